"""
A recording MCP upstream in Python (stdlib only), for the decoder reviews: it reads each forwarded
body with json.loads, as a Python upstream's transport does, and reports what it read (one JSON
line on stdout per POST: the method, params.name, params.uri, the arguments, the id and _meta as
Python read them, plus the raw body). Its answer is the last template POSTed to /_answer (the text
"@ID@" stands for the request's id, written back with json.dumps; one that starts with "SSE:" is
sent as an event stream without that prefix), else an empty result.
The first line on stdout is the port it listens on (127.0.0.1, port 0).
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

answer = {"template": None}


def report(record):
    sys.stdout.write(json.dumps(record, ensure_ascii=True) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self):
        self.send(200)

    def do_GET(self):
        self.send(405)

    def do_DELETE(self):
        self.send(200)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/_answer":
            answer["template"] = raw.decode("utf-8") if raw else None
            return self.send(204)
        record = {"raw": raw.decode("utf-8", "backslashreplace")}
        try:
            message = json.loads(raw)
        except Exception as e:  # noqa: BLE001 - what Python could not read is a report too
            record["error"] = f"{type(e).__name__}: {e}"
            report(record)
            return self.send(400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
        messages = message if isinstance(message, list) else [message]
        record["read"] = [read(m) for m in messages]
        report(record)
        answers = []
        for m in messages:
            if isinstance(m, dict) and "id" in m and "method" in m:
                text = answer["template"] or '{"jsonrpc":"2.0","id":@ID@,"result":{}}'
                answers.append(text.replace("@ID@", json.dumps(m["id"])))
        if not answers:
            return self.send(202)
        body = answers[0] if not isinstance(message, list) else "[" + ",".join(answers) + "]"
        if body.startswith("SSE:"):
            return self.send(200, body[4:].encode("utf-8"), "text/event-stream")
        self.send(200, body.encode("utf-8"))


def read(m):
    if not isinstance(m, dict):
        return {"not_object": repr(m)}
    params = m.get("params")
    p = params if isinstance(params, dict) else {}
    return {
        "method": repr(m.get("method")),
        "id": repr(m.get("id")),
        "name": repr(p.get("name")),
        "uri": repr(p.get("uri")),
        "arguments": repr(p.get("arguments")),
        "meta": repr(p.get("_meta")),
        "keys": [repr(k) for k in p.keys()],
    }


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
report({"port": server.server_address[1]})
server.serve_forever()
