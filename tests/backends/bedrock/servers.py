"""AWS (S3 and Bedrock) from moto's server, and a loopback Messages API server, both on 127.0.0.1.

moto emulates create / get (by job name) / list / stop of customization jobs; its jobs stay InProgress, so tests
move them on through moto's in-process state, as Bedrock would, and the rest of the status mapping is checked
against recorded Bedrock responses (recorded/*.json).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import boto3
import httpx

from tests.serving import free_port

ROLE = "arn:aws:iam::123456789012:role/fto-bedrock"
BUCKET = "fto-training"


class AWS:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.port}"
        httpx.post(f"{self.url}/moto-api/reset")  # moto keeps state per process: each test starts empty
        self.s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=self.url)
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.bedrock = boto3.client("bedrock", region_name="us-west-2", endpoint_url=self.url)

    def job(self, name: str) -> Any:
        """moto's record of a customization job, to move it on as Bedrock would."""
        from moto.backends import get_backend

        return get_backend("bedrock")["123456789012"]["us-west-2"].model_customization_jobs[name]

    def keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


class Messages:
    """Answers Messages API calls (Anthropic's /v1/messages and Bedrock's /model/{id}/invoke) from a script:
    `answers` maps a model id to a function from the last user message to the reply."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answers: dict[str, Any] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if self.path.startswith("/model/"):
                    model = unquote(self.path.split("/")[2])
                    via = "bedrock"
                else:
                    model, via = body["model"], "anthropic"
                outer.calls.append(
                    {
                        "via": via,
                        "model": model,
                        "body": body,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                )
                question = body["messages"][-1]["content"]
                answer = outer.answers.get(model, lambda q: "I cannot tell.")(question)
                reply = {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": answer}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": len(question.split()) + 5, "output_tokens": len(answer.split())},
                }
                raw = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
