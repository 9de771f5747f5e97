"""A pymodbus server (third-party Modbus peer) holding register values the
test gives it: Gatehouse's point tests read every data type and word order
from it over Modbus/TCP or RTU.

usage: pymodbus_bank.py (--tcp PORT | --serial PATH) JSON
JSON: {"units": [1, 2], "hr": [...], "ir": [...], "co": [...], "di": [...]}
Every listed unit id serves the same tables; other ids get no answer.
"""

import argparse
import asyncio
import json

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer


def block(values):
    # The device context adds one to every protocol address, so a block
    # starting at 1 maps protocol address 0 to values[0].
    return ModbusSequentialDataBlock(1, list(values) + [0])


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tcp", type=int)
    parser.add_argument("--serial")
    parser.add_argument("tables")
    args = parser.parse_args()
    t = json.loads(args.tables)
    device = ModbusDeviceContext(
        hr=block(t.get("hr", [0])),
        ir=block(t.get("ir", [0])),
        co=block(t.get("co", [False])),
        di=block(t.get("di", [False])),
    )
    context = ModbusServerContext(
        devices={unit: device for unit in t["units"]}, single=False
    )
    if args.tcp:
        await StartAsyncTcpServer(context, address=("127.0.0.1", args.tcp))
    else:
        await StartAsyncSerialServer(
            context, port=args.serial, baudrate=19200, framer="rtu"
        )


asyncio.run(main())
