"""Offline hygiene: a representative run makes no non-loopback network attempt (DNS lookups included).

The run happens in a fresh interpreter with an audit hook installed before anything is imported, and WITHOUT
the test-only offline variables (HF_HUB_OFFLINE, ...): `import agentdistill` alone must keep the libraries quiet.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests import conftest

RUN = textwrap.dedent(r'''
    import json, socket, sys

    LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
    seen = []

    def audit(event, args):  # every connect and name lookup in the process, whatever library makes it
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6) and str(address[0]) not in LOCAL \
                    and not str(address[0]).startswith("127."):
                seen.append([event, str(address)])
        elif event == "socket.getaddrinfo":
            host = args[0].decode() if isinstance(args[0], bytes) else args[0]
            if host not in LOCAL and not str(host).startswith("127."):
                seen.append([event, str(host)])
        elif event == "urllib.Request":
            seen.append([event, str(args[0])])

    sys.addaudithook(audit)
    sys.audit("socket.getaddrinfo", "selftest.example", 80, 0, 0, 0)  # the hook is live and filters as meant
    assert seen == [["socket.getaddrinfo", "selftest.example"]], seen
    seen.clear()

    import dspy
    import agentdistill as ad

    lm = ad.local_lm("smollm2-135m-instruct", max_tokens=12, stop=["\n\n[["])
    predict = dspy.Predict("question -> answer")
    predict.demos = [dspy.Example(question=f"What is the capital of {c}?", answer=a)
                     for c, a in [("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid")]]
    with dspy.context(lm=lm):
        answer = predict(question="What is the capital of France?").answer

    import mlflow
    mlflow.set_tracking_uri("sqlite:///" + sys.argv[1] + "/mlflow.db")
    with mlflow.start_run():
        mlflow.log_param("answer", answer)
    print("RESULT " + json.dumps({"answer": answer, "attempts": seen}))
''')


def test_representative_run_makes_no_network_attempt(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MLFLOW_TRACKING_URI", "LITELLM_LOCAL_MODEL_COST_MAP",
                        "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_DISABLE_TELEMETRY"}}
    env["DSPY_CACHEDIR"] = str(tmp_path / "dspy_cache")
    proc = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["answer"] == "Paris"
    assert result["attempts"] == []


def test_guard_records_and_refuses_a_real_connection():
    import socket

    before = len(conftest.attempts)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed; the guard must refuse before any packet
            raise AssertionError("the offline guard let a connection through")
        except conftest.NetworkAccessError:
            pass
    finally:
        sock.close()
    assert conftest.attempts[before:] == [("192.0.2.1", 80)]
    del conftest.attempts[before:]  # keep the shared record clean for other offline checks
