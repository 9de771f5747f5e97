//! Real-looking snapshots for the simulated plate cameras: a JPEG of a
//! plate (its colour, white or black characters in an 8×8 bitmap font
//! scaled up, the province character drawn as a seal-like block) on a
//! road-grey background, so `gatehouse demo` shows the snapshot flow end to
//! end. Deterministic for a plate: the same read gives the same bytes.

use jpeg_encoder::{ColorType, Encoder};

use crate::event::PlateColour;

/// Snapshot size (a plate crop with some road around it).
pub const WIDTH: u16 = 320;
/// Snapshot height.
pub const HEIGHT: u16 = 120;
/// Pixels per font pixel.
const SCALE: usize = 4;
/// JPEG quality (small files; the panel shows thumbnails).
const QUALITY: u8 = 70;

type Rgb = [u8; 3];

fn colours(colour: PlateColour) -> (Rgb, Rgb) {
    match colour {
        PlateColour::Yellow => ([238, 190, 40], [20, 20, 20]),
        PlateColour::White => ([240, 240, 240], [20, 20, 20]),
        PlateColour::Black => ([25, 25, 25], [240, 240, 240]),
        PlateColour::Green | PlateColour::YellowGreen => ([90, 200, 120], [20, 20, 20]),
        PlateColour::Blue | PlateColour::Unknown => ([20, 70, 190], [245, 245, 245]),
    }
}

struct Canvas {
    pixels: Vec<u8>,
    width: usize,
}

impl Canvas {
    fn new(width: usize, height: usize, fill: Rgb) -> Canvas {
        Canvas {
            pixels: fill.repeat(width * height),
            width,
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, colour: Rgb) {
        let height = self.pixels.len() / 3 / self.width;
        for row in y..(y + h).min(height) {
            for col in x..(x + w).min(self.width) {
                let i = (row * self.width + col) * 3;
                self.pixels[i..i + 3].copy_from_slice(&colour);
            }
        }
    }

    /// One character of the 8×8 font at `(x, y)`; a non-ASCII character
    /// (the province) is a framed block.
    fn glyph(&mut self, c: char, x: usize, y: usize, colour: Rgb, background: Rgb) {
        let size = 8 * SCALE;
        let Some(bitmap) = u8::try_from(u32::from(c))
            .ok()
            .and_then(|b| font8x8::legacy::BASIC_LEGACY.get(usize::from(b)))
        else {
            self.rect(x + SCALE, y, size - 2 * SCALE, size, colour);
            self.rect(
                x + 2 * SCALE,
                y + SCALE,
                size - 4 * SCALE,
                size - 2 * SCALE,
                background,
            );
            self.rect(
                x + 3 * SCALE,
                y + 3 * SCALE,
                size - 6 * SCALE,
                SCALE,
                colour,
            );
            self.rect(
                x + 3 * SCALE,
                y + 5 * SCALE,
                size - 6 * SCALE,
                SCALE,
                colour,
            );
            return;
        };
        for (row, bits) in bitmap.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    self.rect(x + col * SCALE, y + row * SCALE, SCALE, SCALE, colour);
                }
            }
        }
    }
}

/// A JPEG snapshot of `plate` (e.g. `苏A8HK52`) on a plate of `colour`.
pub fn plate_snapshot(plate: &str, colour: PlateColour) -> Vec<u8> {
    let (width, height) = (usize::from(WIDTH), usize::from(HEIGHT));
    let mut canvas = Canvas::new(width, height, [96, 100, 104]);
    // Bumper and the plate's frame.
    canvas.rect(0, height - 24, width, 24, [60, 62, 66]);
    let (plate_bg, ink) = colours(colour);
    let chars: Vec<char> = plate.chars().take(8).collect();
    let step = 8 * SCALE + SCALE;
    let plate_w = (chars.len().max(1) * step + 3 * SCALE).min(width - 8);
    let (px, py) = ((width - plate_w) / 2, 30);
    canvas.rect(px - 3, py - 3, plate_w + 6, 8 * SCALE + 16, [200, 200, 200]);
    canvas.rect(px, py, plate_w, 8 * SCALE + 10, plate_bg);
    for (i, c) in chars.iter().enumerate() {
        canvas.glyph(*c, px + 2 * SCALE + i * step, py + 5, ink, plate_bg);
    }
    let mut out = Vec::new();
    let encoded =
        Encoder::new(&mut out, QUALITY).encode(&canvas.pixels, WIDTH, HEIGHT, ColorType::Rgb);
    if encoded.is_err() {
        return super::camera::TINY_JPEG.to_vec();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_a_jpeg_of_the_plate_and_differs_per_plate() {
        let a = plate_snapshot("苏A8HK52", PlateColour::Blue);
        let b = plate_snapshot("苏A8HK53", PlateColour::Blue);
        assert_eq!(&a[..3], &[0xff, 0xd8, 0xff], "a JPEG");
        assert_eq!(&a[a.len() - 2..], &[0xff, 0xd9]);
        assert!(a.len() > 1000 && a.len() < 40_000, "{}", a.len());
        assert_ne!(a, b, "the plate is drawn");
        assert_eq!(
            a,
            plate_snapshot("苏A8HK52", PlateColour::Blue),
            "deterministic"
        );
    }
}
