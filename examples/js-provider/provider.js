// A Soar provider for the "VM API", written in JavaScript (jco / componentize-js)
// against soar:plugin@0.2.0 (`wit/`). The same provider as
// examples/python-provider, which is kept on 0.1.0 on purpose.
//
// The VM API runs virtual machines: each has a name, a size, files uploaded
// to it and an address where it serves them. The provider keeps one VM per
// environment, named `<app>-<environment>`, uploads the artifact's files and
// points the VM at the new release. Everything reaches the world through the
// host: `send` (the host checks the destination against what `describe`
// declares and injects the bearer token; this code never sees it) and `log`.
// No state is kept between calls: what `apply` needs travels in the payload.
//
// How the contract looks from JavaScript:
// - a provider error is thrown as `{ tag, val }` (`{ tag: "other", val: "..." }`);
//   a plain `throw new Error()` traps ("wasm `unreachable` executed");
// - `send` throws its transport error (`{ reason, message, sizeCap }`, reason
//   a string such as "not-granted"): pass it on as `{ tag: "transport", val }`
//   and branch on `reason`, never on the message's words;
// - u64 values (file sizes) are BigInt; enums are strings ("no-op"); variants
//   are `{ tag, val }`; options are `undefined` when absent; records have
//   camelCase fields (`settingsSchema`, `deploysArtifact`).

import { send } from "soar:plugin/http@0.2.0";
import { log } from "soar:plugin/log@0.2.0";

const NAME = "vmapi-js";
const VERSION = "0.2.0";
const SIZES = ["small", "medium", "large"];
const KIND = "vm";
const SETTINGS_SCHEMA = {
  type: "object",
  properties: { size: { type: "string", enum: SIZES, default: "small" } },
  additionalProperties: false,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fail(message) {
  throw { tag: "other", val: message };
}

function settings(ctx) {
  try {
    const value = JSON.parse(ctx.settings || "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {};
  }
}

function baseUrl(ctx) {
  const api = ctx.endpoints.find(([name]) => name === "api");
  if (!api) fail("the host gave no `api` endpoint");
  return api[1].replace(/\/+$/, "");
}

const vmName = (ctx) => `${ctx.app}-${ctx.environment}`;

/// One request to the VM API through the host; JSON in, JSON out.
function call(ctx, method, path, { json, segments, ok = [200, 201, 204] } = {}) {
  const headers = [["accept", "application/json"]];
  let body = { tag: "empty" };
  if (json !== undefined) {
    headers.push(["content-type", "application/json"]);
    body = { tag: "segments", val: [{ tag: "bytes", val: encoder.encode(JSON.stringify(json)) }] };
  } else if (segments !== undefined) {
    headers.push(["content-type", "application/octet-stream"]);
    body = { tag: "segments", val: segments };
  }
  let resp;
  try {
    resp = send({
      method,
      url: baseUrl(ctx) + path,
      headers,
      body,
      credential: "vmapi",
      capture: undefined,
      issued: [],
      timeoutMs: 30000,
      region: undefined,
    });
  } catch (e) {
    // jco throws an import's error value wrapped in a ComponentError.
    throw { tag: "transport", val: e && e.payload !== undefined ? e.payload : e };
  }
  const text = decoder.decode(resp.body);
  if (!ok.includes(resp.status)) {
    let code = `http_${resp.status}`;
    let message = text;
    try {
      const err = JSON.parse(text).error || {};
      code = err.code || code;
      message = err.message || message;
    } catch {}
    const requestId = (resp.headers.find(([k]) => k === "x-request-id") || [])[1];
    throw { tag: "api", val: { status: resp.status, code, message, requestId } };
  }
  return text ? JSON.parse(text) : undefined;
}

function findVm(ctx) {
  const name = vmName(ctx);
  const listing = call(ctx, "get", `/v1/vms?name=${encodeURIComponent(name)}`);
  return (listing.vms || []).find((vm) => vm.name === name);
}

/// JSON with sorted keys, so plans are byte-for-byte deterministic.
function dump(value) {
  if (value === undefined || value === null) return undefined;
  const sorted = Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k] ?? null]));
  return JSON.stringify(sorted);
}

function resource(vm) {
  return {
    kind: KIND,
    name: vm.name,
    id: String(vm.id),
    attributes: dump({ artifact: vm.artifact_digest, size: vm.size, status: vm.status, url: vm.url }),
  };
}

const urlEndpoints = (vm) =>
  vm.url ? [{ kind: "url", address: vm.url, port: undefined, user: undefined }] : [];

function change(action, name, reason, before, after, payload) {
  return {
    action,
    kind: KIND,
    name,
    reason,
    before: dump(before),
    after: dump(after),
    payload: dump(payload),
    // The VM serves the files this provider uploads: no release onto hosts.
    deploysArtifact: true,
  };
}

/// Upload every artifact file, then switch the VM to this release.
function release(ctx, id) {
  const artifact = ctx.artifact;
  if (!artifact) fail("this command has no artifact to deploy");
  for (const f of artifact.files) {
    call(ctx, "put", `/v1/vms/${id}/files/${encodeURIComponent(f.path)}`, {
      segments: [{ tag: "file", val: f.path }],
    });
  }
  const body = { artifact_digest: artifact.digest, files: artifact.files.map((f) => f.path) };
  return call(ctx, "post", `/v1/vms/${id}/release`, { json: body }).vm;
}

function state(vm) {
  switch (vm.status) {
    case "running":
      return { tag: "running" };
    case "pending":
      return { tag: "pending" };
    case "stopped":
      return { tag: "stopped" };
    default:
      return { tag: "other", val: String(vm.status || "unknown") };
  }
}

export const provider = {
  describe() {
    return {
      name: NAME,
      version: VERSION,
      summary: "VMs on the VM API, written in JavaScript (jco)",
      artifacts: ["script", "static", "binary"],
      settingsSchema: JSON.stringify(SETTINGS_SCHEMA),
      capabilities: {
        endpoints: [{ name: "api", defaultUrl: "https://vmapi.example.com" }],
        extraHosts: [],
        credentials: [
          { name: "vmapi", scheme: { tag: "bearer" }, env: ["VMAPI_TOKEN"], endpoints: ["api"] },
        ],
        ssh: false,
      },
    };
  },

  validate(ctx) {
    const size = settings(ctx).size ?? "small";
    if (!SIZES.includes(size)) {
      return [
        {
          severity: "error",
          message: `unknown VM size ${JSON.stringify(size)}`,
          field: "size",
          hint: `use one of: ${SIZES.join(", ")}`,
        },
      ];
    }
    return [];
  },

  plan(ctx) {
    const size = settings(ctx).size ?? "small";
    const digest = ctx.artifact?.digest;
    const name = vmName(ctx);
    const vm = findVm(ctx);
    const after = { artifact: digest, size };
    let c;
    if (!vm) {
      c = change("create", name, "no VM for this environment yet", undefined, after, { op: "create", name, size });
    } else {
      const before = { artifact: vm.artifact_digest, size: vm.size };
      if (vm.size !== size) {
        c = change("replace", name, "the size changed (VMs cannot be resized)", before, after, {
          op: "replace",
          id: vm.id,
          name,
          size,
        });
      } else if (vm.artifact_digest !== digest) {
        c = change("update", name, "the artifact changed", before, after, { op: "release", id: vm.id });
      } else {
        c = change("no-op", name, "", before, after, { op: "none", id: vm.id });
      }
    }
    return { changes: [c], diagnostics: [], notes: [`VM API: ${baseUrl(ctx)}`] };
  },

  apply(ctx, c) {
    const payload = JSON.parse(c.payload);
    const messages = [];
    if (payload.op === "delete" || payload.op === "replace") {
      call(ctx, "delete", `/v1/vms/${payload.id}`, { ok: [200, 204, 404] });
      messages.push(`deleted VM ${payload.id}`);
      if (payload.op === "delete") return { resource: undefined, endpoints: [], messages };
    }
    let id;
    if (payload.op === "create" || payload.op === "replace") {
      let vm = findVm(ctx); // idempotent: a retried create finds its VM
      if (!vm) {
        const body = { name: payload.name, size: payload.size, tags: ["managed-by:soar"] };
        vm = call(ctx, "post", "/v1/vms", { json: body }).vm;
        messages.push(`created VM ${vm.id} (${payload.size})`);
      }
      id = vm.id;
    } else if (payload.op === "release" || payload.op === "none") {
      id = payload.id;
    } else {
      fail(`unknown change payload ${c.payload}`);
    }
    const vm = release(ctx, id);
    messages.push(`VM ${id} serves release ${String(vm.artifact_digest || "").slice(0, 12)} at ${vm.url}`);
    log("info", "released", [["vm", String(id)]]);
    return { resource: resource(vm), endpoints: urlEndpoints(vm), messages };
  },

  planDestroy(ctx) {
    const vm = findVm(ctx);
    if (!vm) return { changes: [], diagnostics: [], notes: [] };
    const before = { artifact: vm.artifact_digest, size: vm.size };
    const c = change("delete", vm.name, "destroying the environment", before, undefined, { op: "delete", id: vm.id });
    return { changes: [c], diagnostics: [], notes: [] };
  },

  status(ctx) {
    const vm = findVm(ctx);
    return vm ? [{ resource: resource(vm), state: state(vm), endpoints: urlEndpoints(vm) }] : [];
  },

  logs(ctx, resource, lines) {
    return [];
  },
};
