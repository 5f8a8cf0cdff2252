#!/usr/bin/env python3
"""Create, when missing, what volattachd's tests and `make serve` need in
Keystone: projects, users, role assignments, regions, services and
endpoints. Called by env-keystone.sh; idempotent. Passwords come from the
environment and are never printed."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

URL = sys.argv[1].rstrip("/")
ENDPOINTS = {  # region -> volattachd base URL
    "RegionOne": "http://127.0.0.1:8774",
    "volattach-test": "http://127.0.0.1:18774",
}
SERVICES = [  # (type, name, path)
    ("compute", "nova", "/compute/v2.1"),
    ("volumev3", "cinderv3", "/volume/v3/$(project_id)s"),
    ("block-storage", "cinder", "/volume/v3/$(project_id)s"),
    # Not served: the openstack client's volume create builds an image
    # client first and needs the catalog to name one.
    ("image", "glance", "/image"),
]


def call(method, path, token=None, body=None, ok=(200, 201, 204)):
    # Keystone on sqlite answers 500 "database is locked" now and then:
    # every call here is idempotent, so retry it.
    for attempt in range(3):
        try:
            return call_once(method, path, token, body, ok)
        except urllib.error.HTTPError as e:
            if e.code != 500 or attempt == 2:
                sys.stderr.write("keystone-provision: %s %s answered %d\n" % (method, path, e.code))
                # 75: keystone is wedged (its sqlite lock); the caller restarts it.
                raise SystemExit(75 if e.code == 500 else 1)
            time.sleep(0.5 * (attempt + 1))


def call_once(method, path, token, body, ok):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return resp.status, resp.headers, (json.loads(raw) if raw else {})
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.headers, {}
        raise


def admin_token():
    return login("admin", os.environ["VOLATTACH_KEYSTONE_ADMIN_PASSWORD"], "admin")


def complete(tok):
    """The last things main makes are the endpoints: all there (and the
    users able to log in) means an earlier run finished."""
    _, _, body = call("GET", "/endpoints?interface=public", tok)
    have = {(e["region_id"], e["url"]) for e in body["endpoints"]}
    want = {(r, base + path) for r, base in ENDPOINTS.items() for _, _, path in SERVICES}
    if not want <= have:
        return False
    for name, env in (("volattach", "SERVICE"), ("demo", "DEMO"), ("alt", "ALT")):
        try:
            login(name, os.environ["VOLATTACH_KEYSTONE_%s_PASSWORD" % env], name if name != "volattach" else "service")
        except SystemExit:
            return False
    return True


def login(user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    _, headers, _ = call("POST", "/auth/tokens", body=body)
    return headers["X-Subject-Token"]


def main():
    tok = admin_token()
    if complete(tok):
        return

    def find(kind, key, **query):
        qs = "&".join("%s=%s" % (k, urllib.request.quote(v)) for k, v in query.items())
        _, _, body = call("GET", "/%s?%s" % (kind, qs), tok)
        return body[key]

    def ensure(kind, key, name, attrs):
        found = find(kind, kind, name=name)
        if found:
            return found[0]["id"]
        _, _, body = call("POST", "/" + kind, tok, {key: dict(attrs, name=name)})
        return body[key]["id"]

    projects = {p: ensure("projects", "project", p, {"domain_id": "default"})
                for p in ("service", "demo", "alt")}
    projects["admin"] = find("projects", "projects", name="admin")[0]["id"]
    roles = {r: ensure("roles", "role", r, {}) for r in ("admin", "member", "reader", "service")}
    users = {}
    for name, env in (("volattach", "SERVICE"), ("demo", "DEMO"), ("alt", "ALT")):
        pw = os.environ["VOLATTACH_KEYSTONE_%s_PASSWORD" % env]
        uid = ensure("users", "user", name, {"domain_id": "default", "password": pw, "enabled": True})
        # Keep the password in step with the credentials file.
        call("PATCH", "/users/" + uid, tok, {"user": {"password": pw}})
        users[name] = uid
    users["admin"] = find("users", "users", name="admin")[0]["id"]
    grants = [("volattach", "service", "service"), ("volattach", "service", "admin"),
              ("demo", "demo", "member"), ("demo", "demo", "reader"),
              ("alt", "alt", "member"), ("alt", "alt", "reader"),
              ("admin", "demo", "admin"), ("admin", "alt", "admin")]
    for user, project, role in grants:
        call("PUT", "/projects/%s/users/%s/roles/%s" % (projects[project], users[user], roles[role]), tok)

    _, _, body = call("GET", "/regions", tok)
    have = {r["id"] for r in body["regions"]}
    for region in ENDPOINTS:
        if region not in have:
            call("POST", "/regions", tok, {"region": {"id": region}})
    for stype, sname, path in SERVICES:
        found = [s for s in find("services", "services", type=stype) if s["name"] == sname]
        sid = found[0]["id"] if found else call(
            "POST", "/services", tok, {"service": {"type": stype, "name": sname, "enabled": True}})[2]["service"]["id"]
        _, _, body = call("GET", "/endpoints?service_id=" + sid, tok)
        existing = {(e["region_id"], e["interface"]): e for e in body["endpoints"]}
        for region, base in ENDPOINTS.items():
            for iface in ("public",):
                url = base + path
                e = existing.get((region, iface))
                if e is None:
                    call("POST", "/endpoints", tok, {"endpoint": {
                        "service_id": sid, "region_id": region, "interface": iface, "url": url, "enabled": True}})
                elif e["url"] != url:
                    call("PATCH", "/endpoints/" + e["id"], tok, {"endpoint": {"url": url}})


if len(sys.argv) == 4 and sys.argv[2] == "--project-id":
    # Print the id of a project (for make serve).
    projects = call("GET", "/projects?name=" + sys.argv[3], admin_token())[2]["projects"]
    if not projects:
        raise SystemExit("keystone-provision: no project %s" % sys.argv[3])
    print(projects[0]["id"])
else:
    main()
