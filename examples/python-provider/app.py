"""A Soar provider for the "VM API", written in Python.

The VM API is a small HTTP service that runs virtual machines: each VM has a
name, a size, files uploaded to it and an address where it serves them. The
provider keeps one VM per environment, named `<app>-<environment>`, uploads
the artifact's files to it and points the VM at the new release.

Everything reaches the world through the host: `http.send` (the host checks
the destination against what `describe` declares and injects the bearer
token; this code never sees it), `log.log`. The plugin keeps no state between
calls: what `apply` needs travels in each change's `payload`.
"""

import json
from urllib.parse import quote

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import provider as p
from wit_world.imports import http, log, types

NAME = "vmapi"
VERSION = "0.1.0"
SIZES = ("small", "medium", "large")
KIND = "vm"

SETTINGS_SCHEMA = {
    "type": "object",
    "properties": {
        "size": {"type": "string", "enum": list(SIZES), "default": "small"},
    },
    "additionalProperties": False,
}


# ---------------------------------------------------------------- helpers


def fail(message: str):
    raise Err(types.PluginError_Other(message))


def settings(ctx: types.Context) -> dict:
    try:
        value = json.loads(ctx.settings or "{}")
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def base_url(ctx: types.Context) -> str:
    for name, url in ctx.endpoints:
        if name == "api":
            return url.rstrip("/")
    fail("the host gave no `api` endpoint")


def vm_name(ctx: types.Context) -> str:
    return f"{ctx.app}-{ctx.environment}"


def call(ctx, method, path, body=None, raw=None, ok=(200, 201, 204)):
    """One request to the VM API through the host; JSON in, JSON out."""
    headers = [("accept", "application/json")]
    if body is not None:
        headers.append(("content-type", "application/json"))
        payload = http.Body_Segments([http.Segment_Bytes(json.dumps(body).encode())])
    elif raw is not None:
        headers.append(("content-type", "application/octet-stream"))
        payload = http.Body_Segments(raw)
    else:
        payload = http.Body_Empty()
    req = http.Request(
        method=method,
        url=base_url(ctx) + path,
        headers=headers,
        body=payload,
        credential="vmapi",
        capture=None,
        timeout_ms=30_000,
        region=None,
    )
    try:
        resp = http.send(req)
    except Err as e:
        raise Err(types.PluginError_Transport(f"{method.name} {path}: {e.value.value}"))
    if resp.status not in ok:
        code, message = "http_%d" % resp.status, resp.body.decode(errors="replace")
        try:
            err = json.loads(resp.body).get("error", {})
            code, message = err.get("code", code), err.get("message", message)
        except (ValueError, AttributeError):
            pass
        request_id = dict(resp.headers).get("x-request-id")
        raise Err(types.PluginError_Api(types.ApiError(resp.status, code, message, request_id)))
    if not resp.body:
        return None
    return json.loads(resp.body)


def find_vm(ctx):
    name = vm_name(ctx)
    listing = call(ctx, http.Method.GET, "/v1/vms?name=" + quote(name))
    for vm in listing.get("vms", []):
        if vm.get("name") == name:
            return vm
    return None


def resource(vm) -> types.ManagedResource:
    attrs = {
        "size": vm.get("size"),
        "status": vm.get("status"),
        "url": vm.get("url"),
        "artifact": vm.get("artifact_digest"),
    }
    return types.ManagedResource(KIND, vm["name"], str(vm["id"]), json.dumps(attrs, sort_keys=True))


def url_endpoints(vm):
    url = vm.get("url")
    return [types.Endpoint("url", url, None, None)] if url else []


def change(action, name, reason, before, after, payload) -> types.Change:
    dump = lambda v: None if v is None else json.dumps(v, sort_keys=True)
    return types.Change(action, KIND, name, reason, dump(before), dump(after), json.dumps(payload, sort_keys=True))


def release(ctx, vm_id):
    """Upload every artifact file, then switch the VM to this release."""
    artifact = ctx.artifact
    if artifact is None:
        fail("this command has no artifact to deploy")
    for f in artifact.files:
        path = "/v1/vms/%s/files/%s" % (vm_id, quote(f.path))
        call(ctx, http.Method.PUT, path, raw=[http.Segment_File(f.path)])
    body = {"artifact_digest": artifact.digest, "files": [f.path for f in artifact.files]}
    return call(ctx, http.Method.POST, "/v1/vms/%s/release" % vm_id, body=body)["vm"]


# ---------------------------------------------------------------- the provider


class Provider(exports.Provider):
    def describe(self) -> p.Description:
        return p.Description(
            name=NAME,
            version=VERSION,
            summary="VMs on the VM API, written in Python (componentize-py)",
            artifacts=[types.ArtifactKind.SCRIPT, types.ArtifactKind.STATIC, types.ArtifactKind.BINARY],
            settings_schema=json.dumps(SETTINGS_SCHEMA),
            capabilities=p.Capabilities(
                endpoints=[p.EndpointDecl("api", "https://vmapi.example.com")],
                extra_hosts=[],
                credentials=[
                    p.Credential("vmapi", p.CredentialScheme_Bearer(), ["VMAPI_TOKEN"], ["api"]),
                ],
                ssh=False,
            ),
        )

    def validate(self, ctx: types.Context):
        size = settings(ctx).get("size", "small")
        if size not in SIZES:
            return [
                types.Diagnostic(
                    types.Severity.ERROR,
                    f"unknown VM size {size!r}",
                    "size",
                    "use one of: " + ", ".join(SIZES),
                )
            ]
        return []

    def plan(self, ctx: types.Context) -> types.ChangePlan:
        size = settings(ctx).get("size", "small")
        digest = ctx.artifact.digest if ctx.artifact else None
        name = vm_name(ctx)
        vm = find_vm(ctx)
        after = {"size": size, "artifact": digest}
        if vm is None:
            c = change(types.ChangeAction.CREATE, name, "no VM for this environment yet", None, after,
                       {"op": "create", "name": name, "size": size})
        else:
            before = {"size": vm.get("size"), "artifact": vm.get("artifact_digest")}
            if vm.get("size") != size:
                c = change(types.ChangeAction.REPLACE, name, "the size changed (VMs cannot be resized)", before, after,
                           {"op": "replace", "id": vm["id"], "name": name, "size": size})
            elif vm.get("artifact_digest") != digest:
                c = change(types.ChangeAction.UPDATE, name, "the artifact changed", before, after,
                           {"op": "release", "id": vm["id"]})
            else:
                c = change(types.ChangeAction.NO_OP, name, "", before, after, {"op": "none", "id": vm["id"]})
        return types.ChangePlan([c], [], [f"VM API: {base_url(ctx)}"])

    def apply(self, ctx: types.Context, change: types.Change) -> types.Applied:
        payload = json.loads(change.payload)
        op = payload.get("op")
        messages = []
        if op in ("delete", "replace"):
            call(ctx, http.Method.DELETE, "/v1/vms/%s" % payload["id"], ok=(200, 204, 404))
            messages.append(f"deleted VM {payload['id']}")
            if op == "delete":
                return types.Applied(None, [], messages)
        if op in ("create", "replace"):
            existing = find_vm(ctx)  # idempotent: a retried create finds its VM
            if existing is None:
                body = {"name": payload["name"], "size": payload["size"], "tags": ["managed-by:soar"]}
                existing = call(ctx, http.Method.POST, "/v1/vms", body=body)["vm"]
                messages.append(f"created VM {existing['id']} ({payload['size']})")
            vm_id = existing["id"]
        elif op in ("release", "none"):
            vm_id = payload["id"]
        else:
            fail(f"unknown change payload {change.payload}")
        vm = release(ctx, vm_id)
        messages.append(f"VM {vm_id} serves release {vm.get('artifact_digest', '')[:12]} at {vm.get('url')}")
        log.log(log.Level.INFO, "released", [("vm", str(vm_id))])
        return types.Applied(resource(vm), url_endpoints(vm), messages)

    def plan_destroy(self, ctx: types.Context) -> types.ChangePlan:
        vm = find_vm(ctx)
        if vm is None:
            return types.ChangePlan([], [], [])
        before = {"size": vm.get("size"), "artifact": vm.get("artifact_digest")}
        c = change(types.ChangeAction.DELETE, vm["name"], "destroying the environment", before, None,
                   {"op": "delete", "id": vm["id"]})
        return types.ChangePlan([c], [], [])

    def status(self, ctx: types.Context):
        vm = find_vm(ctx)
        if vm is None:
            return []
        return [types.ResourceStatus(resource(vm), vm.get("status", "unknown"), url_endpoints(vm))]

    def logs(self, ctx: types.Context, resource: str, lines: int):
        return []
