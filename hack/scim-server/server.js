// An in-memory SCIM 2.0 service provider built on SCIMMY and SCIMMY Routers.
// Roster's SCIM store is tested against it: the protocol (filters, PATCH,
// paging, error bodies, ServiceProviderConfig) is SCIMMY's, not Roster's;
// this file only keeps the resources in memory and adds the rules a real
// service enforces (unique userName and externalId, members that exist).
//
// Usage: node server.js [port]   (port 0 or none: any free port)
//
// Environment:
//   SCIM_TOKEN            bearer token clients must send (default "test-token")
//   SCIM_CHANGE_PASSWORD  "false" to advertise changePassword unsupported and
//                         refuse passwords (default "true")
//   SCIM_PATCH            "false" to advertise PATCH unsupported and refuse it
//   SCIM_ETAG             "true" to advertise ETags and check If-Match
//   SCIM_THROTTLE         answer this many requests with 429 before serving
//   SCIM_RETRY_AFTER      the Retry-After value sent with those (default "1")
//   SCIM_THROTTLE_ON_HUP  answer this many requests with 429 after each SIGHUP
//   SCIM_RATE_LIMIT       requests per second a client may send, as a token
//                         bucket; beyond it the answer is 429 with the
//                         Retry-After that the next token needs (0: none)
//   SCIM_RATE_BURST       the bucket's size (default: one second's worth)
//   SCIM_ROSTER_SCHEMAS   "false" to declare only RFC 7643's schemas (core
//                         and enterprise), as most services do; SCIMMY then
//                         refuses Roster's extensions as it would any
//                         unknown schema
//
// GET /_stats (no token) answers what the peer served: authenticated
// requests and the 429s among them, for benchmarks.
//
// Signals, for fault tests: SIGUSR1 stops listening (and drops open
// connections) while keeping the data; SIGUSR2 listens again on the same
// port; SIGHUP starts a burst of 429 answers. Each state change prints one
// line on stdout.
"use strict";

const crypto = require("node:crypto");
// Express 4, not 5: SCIMMY Routers turns startIndex and count into numbers
// by editing req.query, which Express 5 parses afresh on every read, so
// paging parameters would be ignored.
const express = require("express");
const SCIMMY = require("scimmy");
const SCIMMYRouters = require("scimmy-routers").default ?? require("scimmy-routers");

const token = process.env.SCIM_TOKEN || "test-token";
const changePassword = process.env.SCIM_CHANGE_PASSWORD !== "false";
const patch = process.env.SCIM_PATCH !== "false";
const etag = process.env.SCIM_ETAG === "true";
let throttle = Number.parseInt(process.env.SCIM_THROTTLE || "0", 10);
const retryAfter = process.env.SCIM_RETRY_AFTER || "1";
const throttleOnHup = Number.parseInt(process.env.SCIM_THROTTLE_ON_HUP || "0", 10);
const rateLimit = Number.parseFloat(process.env.SCIM_RATE_LIMIT || "0");
const rateBurst = Number.parseFloat(process.env.SCIM_RATE_BURST || "0") || Math.max(1, rateLimit);
const rosterSchemas = process.env.SCIM_ROSTER_SCHEMAS !== "false";

// Roster's extensions: what the core schemas have no place for.
const {Attribute, SchemaDefinition} = SCIMMY.Types;
const RosterUser = new SchemaDefinition("RosterUser", "urn:ietf:params:scim:schemas:extension:roster:2.0:User", "Roster user attributes", [
    new Attribute("boolean", "activated", {description: "The user has set a password or signed in."}),
    new Attribute("complex", "attributes", {multiValued: true, description: "Further key/value pairs."}, [
        new Attribute("string", "key", {required: true, caseExact: true}),
        new Attribute("string", "value", {caseExact: true}),
    ]),
]);
const RosterGroup = new SchemaDefinition("RosterGroup", "urn:ietf:params:scim:schemas:extension:roster:2.0:Group", "Roster group attributes", [
    new Attribute("string", "externalID", {caseExact: true, uniqueness: "server", description: "The group's identifier in other systems."}),
    new Attribute("string", "description", {description: "What the group is for."}),
]);

const users = new Map();
const groups = new Map();
let version = 0;

const conflict = (what) => new SCIMMY.Types.Error(409, "uniqueness", what);
const notFound = (what) => new SCIMMY.Types.Error(404, null, what);
const plain = (v) => JSON.parse(JSON.stringify(v));

function stamp(kind, id, existing) {
    const now = new Date().toISOString();
    version++;
    return {resourceType: kind, created: existing?.meta?.created ?? now, lastModified: now, version: `W/"${version}"`};
}

// mapValues returns a copy of a parsed filter with its compared values
// rewritten (SCIMMY's filters are immutable).
function mapValues(filter, fn) {
    filter = JSON.parse(JSON.stringify([...filter]));
    for (const expr of filter) {
        for (const [attr, e] of Object.entries(expr)) {
            const list = Array.isArray(e) && e.every(Array.isArray) ? e : [e];
            for (const x of list) {
                if (Array.isArray(x) && typeof x[x.length - 1] === "string") x[x.length - 1] = fn(attr, x[x.length - 1]);
            }
        }
    }
    return new SCIMMY.Types.Filter(filter);
}

// SCIMMY 1.3.5's filter tokenizer ends a string at an escaped quote and keeps
// backslash escapes as they are, so a filter value such as "a\"b@x" (RFC
// 7644 section 3.4.2.2: values are JSON strings) does not parse. Before
// SCIMMY sees the filter, each string literal with an escape is swapped for a
// placeholder; the placeholder is swapped back for the decoded value once
// SCIMMY has parsed the filter, and SCIMMY's own matching does the rest.
const placeholder = /^roster-literal-(\d+)$/;
function protectLiterals(req, res, next) {
    if (typeof req.query?.filter === "string" && req.query.filter.includes("\\")) {
        const literals = [];
        const filter = req.query.filter.replace(/"(?:[^"\\]|\\.)*"/g, (lit) => {
            if (!lit.includes("\\")) return lit;
            literals.push(JSON.parse(lit));
            return `"roster-literal-${literals.length - 1}"`;
        });
        // Replace the parsed query for this request only.
        Object.defineProperty(req, "query", {value: {...req.query, filter}, writable: true});
        req.literals = literals;
    }
    next();
}

// userName is caseExact=false (RFC 7643 section 4.1.1): filters on it
// compare without regard to case.
function select(map, resource, caseless, ctx) {
    if (resource.id) {
        const found = map.get(resource.id);
        if (!found) throw notFound(`Resource ${resource.id} not found`);
        return found;
    }
    const all = [...map.values()];
    if (!resource.filter) return all;
    const literals = ctx?.literals ?? [];
    const filter = mapValues(resource.filter, (attr, v) => {
        const m = placeholder.exec(v);
        if (m) v = literals[Number(m[1])];
        return caseless.includes(attr.toLowerCase()) ? v.toLowerCase() : v;
    });
    if (!caseless.length) return filter.match(all);
    const keep = new Set(filter.match(all.map((u) => ({...u, userName: u.userName.toLowerCase()}))).map((u) => u.id));
    return all.filter((u) => keep.has(u.id));
}

const UserResource = SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);
SCIMMY.Resources.declare(rosterSchemas ? UserResource.extend(RosterUser, false) : UserResource)
    .egress((resource, ctx) => select(users, resource, ["username"], ctx))
    .ingress((resource, instance) => {
        const data = plain(instance);
        const existing = resource.id ? users.get(resource.id) : undefined;
        if (resource.id && !existing) throw notFound(`Resource ${resource.id} not found`);
        const name = String(data.userName).toLowerCase();
        for (const u of users.values()) {
            if (u.id !== resource.id && u.userName.toLowerCase() === name) throw conflict(`userName ${data.userName} is already taken`);
        }
        if ("password" in data) {
            if (!changePassword) throw new SCIMMY.Types.Error(400, "mutability", "This service does not accept passwords");
            // Only that a password was set is kept, never the password.
            delete data.password;
        }
        const id = resource.id ?? crypto.randomUUID();
        const user = {...data, id, meta: stamp("User", id, existing)};
        users.set(id, user);
        return user;
    })
    .degress((resource) => {
        if (!users.delete(resource.id)) throw notFound(`Resource ${resource.id} not found`);
        // A user that is gone is a member of no group.
        for (const g of groups.values()) {
            if (g.members?.some((m) => m.value === resource.id)) {
                g.members = g.members.filter((m) => m.value !== resource.id);
                g.meta = stamp("Group", g.id, g);
            }
        }
    });

SCIMMY.Resources.declare(rosterSchemas ? SCIMMY.Resources.Group.extend(RosterGroup, false) : SCIMMY.Resources.Group)
    .egress((resource, ctx) => select(groups, resource, [], ctx))
    .ingress((resource, instance) => {
        const data = plain(instance);
        const existing = resource.id ? groups.get(resource.id) : undefined;
        if (resource.id && !existing) throw notFound(`Resource ${resource.id} not found`);
        for (const g of groups.values()) {
            if (g.id === resource.id) continue;
            // displayName is not unique (RFC 7643 section 4.2 leaves it so).
            if (data.externalId && g.externalId === data.externalId) throw conflict(`externalId ${data.externalId} is already taken`);
            const ext = (x) => x["urn:ietf:params:scim:schemas:extension:roster:2.0:Group"]?.externalID;
            if (ext(data) && ext(g) === ext(data)) throw conflict(`externalID ${ext(data)} is already taken`);
        }
        const seen = new Set();
        data.members = (data.members ?? []).filter((m) => !seen.has(m.value) && seen.add(m.value));
        for (const m of data.members) {
            if (!users.has(m.value)) throw notFound(`Member ${m.value} is not a user`);
            m.type = "User";
        }
        const id = resource.id ?? crypto.randomUUID();
        const group = {...data, id, meta: stamp("Group", id, existing)};
        groups.set(id, group);
        return group;
    })
    .degress((resource) => {
        if (!groups.delete(resource.id)) throw notFound(`Resource ${resource.id} not found`);
    });

const app = express();
// Express's own ETags hash the body; SCIM's are meta.version.
app.set("etag", false);
const stats = {requests: 0, throttled: 0};
app.get("/_stats", (req, res) => res.json(stats));
// The rate limit's token bucket.
let tokens = rateBurst;
let filled = process.hrtime.bigint();
function takeToken() {
    const now = process.hrtime.bigint();
    tokens = Math.min(rateBurst, tokens + Number(now - filled) / 1e9 * rateLimit);
    filled = now;
    if (tokens >= 1) {
        tokens--;
        return 0;
    }
    return Math.max(1, Math.ceil((1 - tokens) / rateLimit));
}
const tooMany = (res, after) => res.status(429).set("Retry-After", String(after)).type("application/scim+json").send(JSON.stringify({
    schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: "429", detail: "Too many requests",
}));
// Only clients that present a token are throttled, as services limit per
// client: the tests' readiness probe, which sends none, is not counted.
app.use((req, res, next) => {
    if (!req.header("Authorization")) return next();
    stats.requests++;
    if (throttle > 0) {
        throttle--;
        stats.throttled++;
        if (throttle === 0) console.log("SCIM server throttle spent");
        return tooMany(res, retryAfter);
    }
    const wait = rateLimit > 0 ? takeToken() : 0;
    if (wait > 0) {
        stats.throttled++;
        return tooMany(res, wait);
    }
    next();
});
// SCIMMY reads a resource, patches it and writes it back in separate steps;
// one write at a time keeps concurrent PATCHes of one group from losing each
// other's changes, as a real service's transactions would.
let queue = Promise.resolve();
app.use((req, res, next) => {
    if (req.method === "GET") return next();
    queue = queue.then(() => new Promise((done) => {
        res.on("finish", done);
        res.on("close", done);
        next();
    }));
});
app.use(protectLiterals);
// What SCIMMY leaves to the application: refusing PATCH when it is not
// offered, and If-Match (RFC 7644 section 3.14) when ETags are. Both run in
// the write queue, so the check and the write it guards are one step.
const scimError = (res, status, detail) => res.status(status).type("application/scim+json").send(JSON.stringify({
    schemas: ["urn:ietf:params:scim:api:messages:2.0:Error"], status: String(status), detail,
}));
app.use((req, res, next) => {
    if (req.method === "PATCH" && !patch) return scimError(res, 501, "PATCH is not supported");
    const m = /^\/(Users|Groups)\/([^/?]+)/.exec(req.path);
    const want = req.header("If-Match");
    if (etag && m && want && want !== "*") {
        const current = (m[1] === "Users" ? users : groups).get(decodeURIComponent(m[2]));
        if (current && current.meta.version !== want) return scimError(res, 412, "The resource changed since it was read");
    }
    next();
});
app.use(new SCIMMYRouters({
    type: "bearer",
    context: (req) => ({literals: req.literals ?? []}),
    docUri: "https://datatracker.ietf.org/doc/html/rfc6750",
    handler: (req) => {
        const got = Buffer.from(req.header("Authorization") ?? "");
        const want = Buffer.from(`Bearer ${token}`);
        if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) throw new Error("Authorization failure");
        return "admin";
    },
}));
SCIMMY.Config.set({patch, filter: 200, sort: true, bulk: false, etag, changePassword});

let port = Number.parseInt(process.argv[2] ?? process.env.PORT ?? "0", 10);
let server;
const sockets = new Set();
function listen() {
    server = app.listen(port, "127.0.0.1", () => {
        port = server.address().port;
        console.log(`SCIM server listening on port ${port}`);
    });
    server.on("connection", (s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
    });
}
// While stopped nothing else keeps Node running; this timer does.
let idle;
process.on("SIGUSR1", () => {
    idle = setInterval(() => {}, 1 << 30);
    server.close(() => console.log("SCIM server stopped"));
    for (const s of sockets) s.destroy();
});
process.on("SIGUSR2", () => {
    clearInterval(idle);
    listen();
});
process.on("SIGHUP", () => {
    throttle = throttleOnHup;
    console.log(`SCIM server throttling ${throttle} requests`);
});
process.on("SIGTERM", () => process.exit(0));
listen();
