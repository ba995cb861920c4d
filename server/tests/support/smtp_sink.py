"""A real mail server for the tests (PyPI aiosmtpd): listens on 127.0.0.1:PORT and keeps each
message it accepts as FOLDER/NNNN.json (recipients, sender, subject, Message-ID, the plain text
and HTML parts, decoded). While FOLDER/refuse exists it refuses every message with 451 (a mail
server that says "try again later"). Used by server/tests/email.rs and end2end/tests/email.spec.ts.

Usage: python smtp_sink.py PORT FOLDER
"""

import email
import email.policy
import json
import os
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if (self.folder / "refuse").exists():
            return "451 4.3.0 Not now: the test's mail server refuses mail"
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        kept = {
            "to": list(envelope.rcpt_tos),
            "from": envelope.mail_from,
            "subject": str(message["Subject"] or ""),
            "message_id": str(message["Message-ID"] or ""),
            "content_type": message.get_content_type(),
            "text": plain.get_content() if plain is not None else "",
            "html": html.get_content() if html is not None else "",
        }
        with self.lock:
            self.count += 1
            name = f"{self.count:04}.json"
        # Written whole, then renamed: a reader never sees half a message.
        partial = self.folder / (name + ".part")
        partial.write_text(json.dumps(kept))
        os.replace(partial, self.folder / name)
        return "250 OK: kept"


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"smtp sink listening on 127.0.0.1:{port}", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
