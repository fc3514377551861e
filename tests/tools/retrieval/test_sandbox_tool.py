"""The search tool called from model-written code inside the sandbox (through its host-tool channel)."""

from agentdistill.tools.sandbox import Sandbox


def test_search_from_sandboxed_code(tiny_index):
    tool = tiny_index.as_tool(k=2)
    expected = tool("Kansas fight song")
    with Sandbox(tools={"search": tool}, timeout=60.0) as sb, sb.episode() as ep:
        r = ep.run('result = search("Kansas fight song")\nprint(result)\nresult.splitlines()[0][:4]')
        assert r.error is None, r.error
        assert r.stdout.strip() == expected.strip()
        assert r.value == repr("[1] ")
        assert r.tool_calls[0]["name"] == "search" and r.tool_calls[0]["result"] == expected
        r = ep.run("search('')")  # the tool's error reaches the code as an exception the model can read
        assert r.error_kind == "exception" and "query is empty" in r.error
        r = ep.run('final_answer(search("D1NZ drifting").count("\\n") + 1)')
        assert r.is_final and r.final_answer == 2
