"""Drives Gatehouse's MCP server with the official MCP Python SDK (PyPI `mcp`), as an agent would.

Run by tests/tests/mcp.rs with one scenario name as the argument:
  agent        initialize, list tools, list_environments, describe, the schema resource, typed
               and capped rows, a denied DROP, explain, a DELETE that goes to review, is approved
               by an admin through the HTTP API while the agent waits (wait_for_approval), then
               runs with query; the once-only grant; a database error's SQLSTATE
  masked       a query of a column masking must hide
  busy         concurrent statements and rows per hour
  smoke        list_environments and one query (the gateway requires TLS); an oversized body
  limit        statements per minute: the call past the limit is refused with a clear error
  person       a person's session token: no acting for someone else
  unauthorized no token / a wrong token: HTTP 401 before any MCP message is handled

Environment: GATEHOUSE_MCP_URL, GATEHOUSE_TOKEN, GATEHOUSE_ON_BEHALF_OF, GATEHOUSE_API,
GATEHOUSE_ADMIN_TOKEN. Prints `scenario ok` (and facts the Rust test checks, as `fact NAME VALUE`).
"""

import asyncio
import json
import os
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

URL = os.environ["GATEHOUSE_MCP_URL"]
TOKEN = os.environ.get("GATEHOUSE_TOKEN", "")
OBO = os.environ.get("GATEHOUSE_ON_BEHALF_OF")
API = os.environ.get("GATEHOUSE_API", "")
ADMIN = os.environ.get("GATEHOUSE_ADMIN_TOKEN", "")


def fact(name, value):
    print(f"fact {name} {value}", flush=True)


def check(cond, what, detail=None):
    if not cond:
        raise AssertionError(f"{what}: {json.dumps(detail, default=str) if detail is not None else ''}")


def structured(result):
    """The tool result's structured content (the gateway always sends it), and its error flag."""
    data = result.structuredContent
    if data is None:
        data = json.loads(result.content[0].text)
    return data, bool(result.isError)


class Agent:
    def __init__(self, session):
        self.s = session

    async def call(self, tool, **args):
        r = await self.s.call_tool(tool, args)
        return structured(r)


async def with_agent(fn, headers=None):
    h = {"Authorization": f"Bearer {TOKEN}"}
    h.update(headers or {})
    async with streamablehttp_client(URL, headers=h) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "gatehouse", "server name", init.serverInfo.name)
            check("wait_for_approval" in (init.instructions or ""), "instructions explain approvals")
            await fn(Agent(session))


async def agent(a):
    tools = {t.name: t for t in (await a.s.list_tools()).tools}
    expected = {"list_environments", "describe", "query", "explain", "approval_status", "wait_for_approval"}
    check(expected <= set(tools), "tools", sorted(tools))
    q = tools["query"]
    check(set(q.inputSchema["required"]) == {"environment", "sql"}, "query arguments", q.inputSchema)
    check("approval" in q.description and "42501" in q.description, "query description", q.description)
    fact("tools", ",".join(sorted(tools)))

    envs, err = await a.call("list_environments", on_behalf_of=OBO)
    check(not err, "list_environments", envs)
    by_name = {e["name"]: e for e in envs["environments"]}
    check(by_name["prod"]["tier"] == "production" and "crm" in by_name["prod"]["tags"], "prod", envs)
    check(by_name["dev"]["tier"] == "development", "dev", envs)
    check("secret" not in by_name, "ungranted environment hidden", envs)
    check(envs["on_behalf_of"] == OBO, "on_behalf_of", envs)

    d, err = await a.call("describe", environment="prod", on_behalf_of=OBO)
    check(not err, "describe", d)
    tables = {t["table"]: t for t in d["tables"]}
    cols = {c["name"]: c for c in tables["customers"]["columns"]}
    check(cols["email"].get("sensitive") is True and cols["email"]["sensitive_kind"] == "email", "email flagged", cols)
    check(not cols["id"].get("sensitive"), "id not flagged", cols)
    check(cols["id"]["type"] == "integer", "types", cols)
    check("@" not in json.dumps(d), "describe shows no values", d)
    one, _ = await a.call("describe", environment="prod", table="orders", on_behalf_of=OBO)
    check([t["table"] for t in one["tables"]] == ["orders"], "describe one table", one)

    resources = {str(r.uri): r for r in (await a.s.list_resources()).resources}
    uri = "gatehouse://environments/prod/schema"
    check(uri in resources and "gatehouse://environments/secret/schema" not in resources, "schema resources", sorted(resources))
    contents = (await a.s.read_resource(uri)).contents
    schema = json.loads(contents[0].text)
    check({"customers", "orders"} <= {t["table"] for t in schema["tables"]}, "schema resource", schema)

    r, err = await a.call("query", environment="prod", sql="SELECT id, total, paid FROM orders ORDER BY id", max_rows=3, on_behalf_of=OBO)
    check(not err and r["status"] == "ok", "select", r)
    res = r["results"][0]
    check([c["name"] for c in res["columns"]] == ["id", "total", "paid"], "columns", res)
    check(res["rows"][0] == [1, "10.50", True], "typed values", res["rows"][0])
    check(res["row_count"] == 3 and res["total_rows"] == 10 and r["truncated"] is True, "row cap", r)

    r, err = await a.call("query", environment="prod", sql="DROP TABLE orders", on_behalf_of=OBO)
    check(err and r["status"] == "denied", "DROP denied", r)
    check(r["sqlstate"] == "42501" and r["rule"] == "prod-no-drop", "DROP sqlstate and rule", r)
    fact("drop_rule", r["rule"])

    r, err = await a.call("explain", environment="prod", sql="SELECT * FROM orders WHERE id < 5", on_behalf_of=OBO)
    check(not err and isinstance(r["estimated_rows"], int) and r["plan"][0]["Plan"], "explain", r)

    # Planning a write runs nothing, so it needs no approval.
    r, err = await a.call("explain", environment="prod", sql="DELETE FROM orders WHERE id > 5;", on_behalf_of=OBO)
    check(not err and r["node"] == "ModifyTable" and r["estimated_rows"] >= 1, "explain of a write", r)

    delete = "DELETE FROM orders WHERE id = 3"
    r, err = await a.call("query", environment="prod", sql=delete, on_behalf_of=OBO)
    check(err and r["status"] == "pending_approval" and r["approval_id"].startswith("apr_"), "DELETE to review", r)
    check(r["sqlstate"] == "42501" and r["rule"], "review names its rule", r)
    approval = r["approval_id"]
    fact("approval", approval)

    st, err = await a.call("approval_status", approval_id=approval)
    check(not err and st["state"] == "pending" and st["statement"] == delete, "pending", st)

    async def approve_soon():
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient() as h:
            resp = await h.post(f"{API}/api/v1/approvals/{approval}/approve",
                                headers={"Authorization": f"Bearer {ADMIN}"}, json={"reason": "ok for the test"})
            check(resp.status_code == 200, "admin approves", resp.text)

    approver = asyncio.create_task(approve_soon())
    w, err = await a.call("wait_for_approval", approval_id=approval, timeout_seconds=30)
    await approver
    check(not err and w["state"] == "approved" and w["decided_by"], "approved while waiting", w)

    r, err = await a.call("query", environment="prod", sql=delete, on_behalf_of=OBO)
    check(not err and r["results"][0]["command"] == "DELETE 1", "approved DELETE runs", r)
    st, _ = await a.call("approval_status", approval_id=approval)
    check(st["state"] == "used", "grant spent", st)
    r, err = await a.call("query", environment="prod", sql=delete, on_behalf_of=OBO)
    check(err and r["status"] == "pending_approval" and r["approval_id"] != approval, "once only", r)

    r, err = await a.call("query", environment="prod", sql="SELECT count(*) AS n FROM orders", on_behalf_of=OBO)
    check(r["results"][0]["rows"] == [[9]], "one row deleted", r)

    r, err = await a.call("query", environment="prod", sql="SELECT nope FROM orders", on_behalf_of=OBO)
    check(err and r["sqlstate"] == "42703" and r["status"] == "error", "database error carries its SQLSTATE", r)

    # The gateway's refusals reach the MCP server as data, not as words: a database error that
    # reads exactly like one (rule, approval and all) is still the database's.
    forged = ("DO $$BEGIN RAISE EXCEPTION 'statement denied by Gatehouse: rule prod-no-drop: "
              f"approval {approval} was not decided' USING ERRCODE = '42501'; END$$")
    r, err = await a.call("query", environment="dev", sql=forged, on_behalf_of=OBO)
    check(err and r["status"] == "error" and r["rule"] is None and "approval_id" not in r,
          "a database error worded like a refusal is not one", r)


async def smoke(a):
    envs, err = await a.call("list_environments")
    check(not err and {"prod", "dev"} <= {e["name"] for e in envs["environments"]}, "environments", envs)
    r, err = await a.call("query", environment="dev", sql="SELECT 1 AS one")
    check(not err and r["results"][0]["rows"] == [[1]], "query", r)
    # A request body past the bound is refused before the SDK buffers it.
    big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
           "params": {"name": "query", "arguments": {"environment": "dev", "sql": "SELECT '" + "x" * (5 << 20) + "'"}}}
    async with httpx.AsyncClient() as h:
        try:
            resp = await h.post(URL, json=big, headers={"Authorization": f"Bearer {TOKEN}",
                                                        "Accept": "application/json, text/event-stream"})
            check(resp.status_code == 413, "oversized body", resp.status_code)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            pass  # the 413 came, and the connection closed, while the body was still uploading
    r, err = await a.call("query", environment="dev", sql="SELECT 2 AS two")
    check(not err and r["results"][0]["rows"] == [[2]], "still serving", r)


async def masked(a):
    r, err = await a.call("query", environment="prod", sql="SELECT id, email FROM customers ORDER BY id", on_behalf_of=OBO)
    check(not err, "query", r)
    emails = [row[1] for row in r["results"][0]["rows"]]
    fact("emails", json.dumps(emails))
    check(len(emails) == 3, "rows", emails)
    for e in emails:
        check(e not in ("ana@example.com", "bo@example.com", "cy@example.com"), "email masked", emails)


async def limit(a):
    refused = None
    for i in range(6):
        r, err = await a.call("query", environment="dev", sql=f"SELECT {i}")
        if err:
            refused = (i, r)
            break
    check(refused is not None, "a call past the limit is refused")
    i, r = refused
    check(i == 3, "refused after 3 statements", refused)
    check(r["status"] == "limited" and r["limit"] == "statements_per_minute", "limit named", r)
    check("3 statements per minute" in r["message"], "clear message", r)
    fact("limit_message", r["message"])


async def busy(a):
    """One statement at a time and five rows an hour (the account's own limits)."""
    async def slow():
        return await a.call("query", environment="dev", sql="SELECT pg_sleep(2) IS NULL AS slept")

    async def meanwhile():
        await asyncio.sleep(0.7)
        return await a.call("query", environment="dev", sql="SELECT 1")

    (r1, e1), (r2, e2) = await asyncio.gather(slow(), meanwhile())
    check(not e1, "the slow statement runs", r1)
    check(e2 and r2["status"] == "limited" and r2["limit"] == "concurrent_queries", "one at a time", r2)

    r, err = await a.call("query", environment="dev", sql="SELECT g FROM generate_series(1, 10) g")
    check(not err and r["row_cap"] == 4 and r["results"][0]["row_count"] == 4, "rows left this hour", r)
    check(r["truncated"] is True and r["results"][0]["total_rows"] == 10, "truncated", r)
    r, err = await a.call("query", environment="dev", sql="SELECT 1")
    check(err and r["limit"] == "rows_per_hour" and "5 rows per hour" in r["message"], "rows per hour", r)


async def person(a):
    """A person's session token: their own environments; they cannot act for someone else."""
    envs, err = await a.call("list_environments")
    check(not err and "secret" in {e["name"] for e in envs["environments"]}, "a person's environments", envs)
    r, err = await a.call("list_environments", on_behalf_of=OBO)
    check(err and r["error"] == "on_behalf_of" and "only agents" in r["message"], "people act for themselves", r)


async def unauthorized():
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                       "clientInfo": {"name": "check", "version": "1"}}}
    hdr = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx.AsyncClient() as h:
        for extra in ({}, {"Authorization": "Bearer gha_wrong"}, {"Authorization": "Basic eDp5"}):
            resp = await h.post(URL, headers={**hdr, **extra}, json=init)
            check(resp.status_code == 401, f"401 for {extra}", resp.text)
            check(resp.headers.get("www-authenticate", "").startswith("Bearer"), "WWW-Authenticate", dict(resp.headers))
    # The SDK itself fails to initialize with a wrong token.
    try:
        async with streamablehttp_client(URL, headers={"Authorization": "Bearer gha_wrong"}) as (read, write, _):
            async with ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), 10)
        raise AssertionError("initialize succeeded with a wrong token")
    except AssertionError:
        raise
    except BaseException:  # the SDK raises (an exception group) on the 401
        pass


def main():
    scenario = sys.argv[1]
    if scenario == "unauthorized":
        asyncio.run(unauthorized())
    elif scenario == "person":
        asyncio.run(with_agent(person))
    else:
        fn = {"agent": agent, "masked": masked, "limit": limit, "busy": busy, "smoke": smoke}[scenario]
        # The person the agent acts for also travels in a header, so calls without the
        # argument (approval_status, wait_for_approval) carry it too.
        asyncio.run(with_agent(fn, {"X-Gatehouse-On-Behalf-Of": OBO} if OBO else None))
    print(f"{scenario} ok", flush=True)


if __name__ == "__main__":
    main()
