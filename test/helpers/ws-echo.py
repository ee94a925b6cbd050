# A real WebSocket client nobody here wrote (Debian's python3-websockets) drives one session:
# text, binary, a fragmented text message, a ping, then a normal close. It prints one JSON
# object with everything it received, so that two fronts can be compared.
# Usage: /usr/bin/python3 ws-echo.py ws://127.0.0.1:PORT/path
import asyncio
import json
import sys

import websockets


async def main(uri):
    got = []
    async with websockets.connect(uri, compression=None, open_timeout=10, close_timeout=10) as ws:
        await ws.send("hello")
        got.append(await ws.recv())
        await ws.send(bytes([0, 1, 2, 254, 255]))
        got.append(list(await ws.recv()))
        await ws.send(["frag-", "ment"])
        got.append(await ws.recv())
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        got.append("pong")
    print(json.dumps({"got": got, "close_code": ws.close_code, "close_reason": ws.close_reason}))


asyncio.run(main(sys.argv[1]))
