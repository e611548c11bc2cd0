"""Just enough of the Redis protocol (RESP2) to scan and delete keys, without a client library."""

from __future__ import annotations

from collections.abc import Iterator

from lab_env.errors import LabEnvError


class RedisConnection:
    """Just enough of the Redis protocol (RESP2) to scan keys, without a client library."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self.sock = socket.create_connection((host, port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> RedisConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.sock.close()

    def scan(self, match: str = "*") -> Iterator[str]:
        """Every key matching ``match`` (SCAN: the server stays responsive on a big keyspace)."""
        cursor = "0"
        while True:
            cursor, found = self.command("SCAN", cursor, "MATCH", match, "COUNT", "1000")
            yield from found
            if cursor == "0":
                return

    def command(self, *parts: str):
        payload = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
        self.sock.sendall(payload.encode())
        return self._reply()

    def _reply(self):
        line = self.reader.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:].decode()
        if kind == b"-":
            raise LabEnvError(f"Redis answered: {rest}", "run `lab-env status`")
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"$":
            if int(rest) < 0:
                return None
            data = self.reader.read(int(rest) + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise LabEnvError(f"unexpected reply from Redis: {line[:40]!r}")
