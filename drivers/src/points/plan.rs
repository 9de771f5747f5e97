//! The request planner: the points of one poll group merged into as few
//! Modbus reads as the protocol allows (at most 125 registers or 2000 bits
//! each), bridging gaps of up to `max_gap` unused items, and the decoding
//! of each read's answer back into point values. Pure.

use crate::event::Reading;
use crate::points::codec::{decode_bit, decode_registers};
use crate::points::table::{Point, RegisterKind};

/// One read request and the points it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// Which table.
    pub kind: RegisterKind,
    /// First address.
    pub start: u16,
    /// Items (registers or bits).
    pub count: u16,
    /// Indices into the table of the points inside.
    pub points: Vec<usize>,
}

/// Plans the reads for the points of `group`. `max_gap` is the largest run
/// of unused items read to save a request (0: only adjacent points merge).
pub fn plan(points: &[Point], group: usize, max_gap: u16) -> Vec<Read> {
    let mut order: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].group == group)
        .collect();
    order.sort_by_key(|&i| (points[i].kind, points[i].address));
    let mut reads: Vec<Read> = Vec::new();
    for i in order {
        let p = &points[i];
        let end = p.end();
        if let Some(last) = reads.last_mut()
            && last.kind == p.kind
        {
            let last_end = u32::from(last.start) + u32::from(last.count);
            let gap = u32::from(p.address).saturating_sub(last_end);
            let new_count = end.max(last_end) - u32::from(last.start);
            if gap <= u32::from(max_gap) && new_count <= u32::from(p.kind.max_per_read()) {
                // Fits in u16: bounded by max_per_read.
                last.count = u16::try_from(new_count).unwrap_or(last.count);
                last.points.push(i);
                continue;
            }
        }
        reads.push(Read {
            kind: p.kind,
            start: p.address,
            count: p.width(),
            points: vec![i],
        });
    }
    reads
}

/// An answer to a [`Read`].
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// Bits, for coils and discrete inputs.
    Bits(&'a [bool]),
    /// Registers, for holding and input registers.
    Words(&'a [u16]),
}

/// Decodes each point of `read` from `answer`: `(point index, value)`; a
/// point the answer is too short for gets `None`.
pub fn decode(points: &[Point], read: &Read, answer: Answer<'_>) -> Vec<(usize, Option<Reading>)> {
    read.points
        .iter()
        .map(|&i| {
            let p = &points[i];
            let at = usize::from(p.address - read.start);
            let value = match answer {
                Answer::Bits(bits) => bits.get(at).copied().map(decode_bit),
                Answer::Words(words) => words.get(at..).and_then(|w| decode_registers(p, w)),
            };
            (i, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::table::DataType;

    fn p(kind: RegisterKind, address: u16, t: DataType) -> Point {
        Point::new(&format!("{kind:?}{address}"), kind, address, t)
    }

    #[test]
    fn contiguous_points_merge_and_gaps_up_to_the_limit_are_bridged() {
        let points = vec![
            p(RegisterKind::Holding, 0, DataType::F32),
            p(RegisterKind::Holding, 2, DataType::U16),
            p(RegisterKind::Holding, 6, DataType::U16),
            p(RegisterKind::Holding, 20, DataType::U16),
            p(RegisterKind::Input, 3, DataType::U16),
            p(RegisterKind::Coil, 0, DataType::Bool),
            p(RegisterKind::Coil, 4, DataType::Bool),
            p(RegisterKind::Coil, 9, DataType::Bool),
        ];
        let reads = plan(&points, 0, 3);
        let spans: Vec<_> = reads.iter().map(|r| (r.kind, r.start, r.count)).collect();
        assert_eq!(
            spans,
            vec![
                (RegisterKind::Coil, 0, 5),
                (RegisterKind::Coil, 9, 1),
                (RegisterKind::Holding, 0, 7),
                (RegisterKind::Holding, 20, 1),
                (RegisterKind::Input, 3, 1),
            ]
        );
        assert_eq!(reads[2].points, vec![0, 1, 2]);
        let tight = plan(&points, 0, 0);
        assert_eq!(tight.len(), 7, "{tight:?}");
    }

    #[test]
    fn reads_never_exceed_the_protocol_limits() {
        let points: Vec<Point> = (0..300)
            .map(|a| p(RegisterKind::Holding, a, DataType::U16))
            .chain((0..5000).map(|a| p(RegisterKind::Coil, a, DataType::Bool)))
            .collect();
        let reads = plan(&points, 0, 10);
        for r in &reads {
            assert!(r.count <= r.kind.max_per_read(), "{r:?}");
        }
        let holding: Vec<_> = reads
            .iter()
            .filter(|r| r.kind == RegisterKind::Holding)
            .map(|r| r.count)
            .collect();
        assert_eq!(holding, vec![125, 125, 50]);
        assert_eq!(
            reads
                .iter()
                .filter(|r| r.kind == RegisterKind::Coil)
                .count(),
            3
        );
        // A point never straddles two reads: every point is in exactly one.
        let served: usize = reads.iter().map(|r| r.points.len()).sum();
        assert_eq!(served, points.len());
    }

    #[test]
    fn a_merged_answer_decodes_each_point_at_its_offset() {
        let mut points = vec![
            p(RegisterKind::Holding, 10, DataType::U16),
            p(RegisterKind::Holding, 12, DataType::U32),
            p(RegisterKind::Holding, 12, DataType::Bit(0)),
        ];
        points[2].group = 1;
        let reads = plan(&points, 0, 4);
        assert_eq!(reads.len(), 1);
        let values = decode(&points, &reads[0], Answer::Words(&[7, 0, 0, 9]));
        assert_eq!(
            values,
            vec![
                (0, Some(Reading::Number(7.0))),
                (1, Some(Reading::Number(9.0)))
            ]
        );
        let short = decode(&points, &reads[0], Answer::Words(&[7, 0, 0]));
        assert_eq!(short[1], (1, None));
    }
}
