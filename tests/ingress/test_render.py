"""What the ingress controller serves (model.build_plan) and the nginx.conf it writes (render)."""

from __future__ import annotations

import re

from tests.ingress.helpers import (
    backend,
    endpoint_slice,
    ingress,
    path,
    rule,
    self_signed,
    service,
    tls_secret,
)

from k8py.ingress.model import (
    BACKEND_NOT_FOUND,
    CONFLICT,
    INVALID_SECRET,
    NOT_FOUND,
    SECRET_NOT_FOUND,
    UNAVAILABLE,
    Backend,
    Plan,
    build_plan,
    cert_problem,
    is_ours,
    our_classes,
    ready_endpoints,
)
from k8py.ingress.render import RenderOptions, render, server_name

WEB = {("default", "web"): service("web"), ("default", "api"): service("api", ports=(("grpc", 9000),))}
SLICES = {("default", "web"): [endpoint_slice("web", ["10.42.0.5", "10.42.0.6"], 8080)],
          ("default", "api"): [endpoint_slice("api", ["10.42.0.7"], 9090, "grpc")]}


def plan(*ings: dict, secrets: dict | None = None) -> Plan:
    return build_plan(ings, WEB, SLICES, secrets or {})


def server(p: Plan, host: str):
    return next(s for s in p.servers if s.host == host)


def test_ownership_follows_kube_rules() -> None:
    ours = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "k8py-nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "k8py.io/ingress-nginx"}}
    other = {"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}
    names, default = our_classes([ours, other])
    assert names == {"k8py-nginx"} and default
    assert is_ours(ingress("a", cls="k8py-nginx"), names, default)
    assert not is_ours(ingress("a", cls="traefik"), names, default)
    assert not is_ours(ingress("a", cls="missing-class"), names, default)
    assert is_ours(ingress("a"), names, default)  # no class: ours while ours is the default
    assert not is_ours(ingress("a"), names, False)
    assert is_ours(ingress("a", annotations={"kubernetes.io/ingress.class": "k8py-nginx"}), names, False)
    assert not is_ours(ingress("a", annotations={"kubernetes.io/ingress.class": "traefik"}), names, True)


def test_upstreams_are_ready_endpoints_of_the_service_port() -> None:
    p = plan(ingress("a", rule("foo.example.com", path("/", "web"), path("/api", "api", port="grpc"))))
    assert p.upstreams == {"default-web-http": ("10.42.0.5:8080", "10.42.0.6:8080"),
                           "default-api-grpc": ("10.42.0.7:9090",)}
    assert not p.problems
    # not-ready endpoints are left out; serving-and-terminating ones only when none is ready
    sl = endpoint_slice("web", ["10.0.0.1"], 80)
    sl["endpoints"].append({"addresses": ["10.0.0.2"], "conditions": {"ready": False}})
    sl["endpoints"].append({"addresses": ["fd00::3"], "conditions": {"ready": False, "serving": True,
                                                                     "terminating": True}})
    assert ready_endpoints([sl], "http") == ("10.0.0.1:80",)
    sl["endpoints"][0]["conditions"]["ready"] = False
    assert ready_endpoints([sl], "http") == ("[fd00::3]:80",)
    assert ready_endpoints([sl], "other") == ()


def test_no_ready_endpoint_answers_503_and_missing_service_is_a_problem() -> None:
    slices = {("default", "web"): [endpoint_slice("web", ["10.42.0.5"], 8080, ready=False)]}
    p = build_plan([ingress("a", rule("foo", path("/", "web"), path("/gone", "nothere"), path("/p", "web", port=81)))],
                   WEB, slices, {})
    locs = server(p, "foo").locations
    assert locs[("/", False)].backend == UNAVAILABLE
    assert locs[("/gone", False)].backend == UNAVAILABLE
    assert locs[("/p", False)].backend == UNAVAILABLE
    reasons = [(x.reason, x.message) for x in p.problems["default/a"]]
    assert reasons == [
        (BACKEND_NOT_FOUND, 'spec.rules[0].http.paths[1]: service "default/nothere" not found; answering 503'),
        (BACKEND_NOT_FOUND, 'spec.rules[0].http.paths[2]: service "default/web" has no port 81; answering 503')]
    assert "return 503;" in render(p, RenderOptions(state_dir="/s"))


def test_wildcard_host_matches_one_label_only() -> None:
    assert server_name("foo.example.com") == "foo.example.com"
    sn = server_name("*.example.com")
    assert sn == '"~^[^.]+\\.example\\.com$"'
    rx = re.compile(sn.strip('"')[1:])
    assert rx.match("bar.example.com")
    assert not rx.match("a.bar.example.com")
    assert not rx.match("example.com")
    assert not rx.match("barexample.com")
    text = render(plan(ingress("a", rule("*.example.com", path("/", "web")))), RenderOptions(state_dir="/s"))
    assert "server_name *.example.com" not in text  # nginx's own wildcard would match deeper names
    assert 'server_name "~^[^.]+\\.example\\.com$";' in text


def _locations(text: str, host: str) -> list[str]:
    block = text.split(f"server_name {host};", 1)[1].split("\n    }\n", 1)[0]
    return re.findall(r"location (.+?) \{", block)


def test_path_types_and_precedence() -> None:
    p = plan(ingress("a", rule("foo", path("/", "web"), path("/foo", "web"), path("/foo/bar/", "api", port="grpc"),
                                 path("/exact", "api", "Exact", port="grpc"), path("/foo", "api", "Exact", port="grpc"),
                                 path("/impl", "web", "ImplementationSpecific"))))
    text = render(p, RenderOptions(state_dir="/s"))
    locs = _locations(text, "foo")
    # Prefix /foo: /foo itself and /foo/... (not /foobar); Exact /foo wins /foo over Prefix /foo;
    # a trailing slash is ignored; ImplementationSpecific is a Prefix; the root last
    assert locs == ['= "/foo/bar"', '"/foo/bar/"', '= "/exact"', '= "/impl"', '"/impl/"', '= "/foo"', '"/foo/"', "/"]
    foo_exact = text.split('location = "/foo" {', 1)[1].split("}", 1)[0]
    assert "default-api-grpc" in foo_exact  # the Exact path's backend, not the Prefix's
    foo_prefix = text.split('location "/foo/" {', 1)[1].split("}", 1)[0]
    assert "default-web-http" in foo_prefix


def test_older_ingress_wins_a_path_the_other_gets_a_problem() -> None:
    old = ingress("old", rule("foo", path("/x", "web")), created="2024-01-01T00:00:00Z")
    new = ingress("new", rule("foo", path("/x", "api", port="grpc"), path("/y", "api", port="grpc")),
                  created="2024-02-01T00:00:00Z")
    p = plan(new, old)
    locs = server(p, "foo").locations
    assert locs[("/x", False)].ingress == "default/old"
    assert locs[("/y", False)].ingress == "default/new"
    assert [x.reason for x in p.problems["default/new"]] == [CONFLICT]
    assert p.ingresses == ["default/old", "default/new"]


def test_default_backend_and_404() -> None:
    # no default backend anywhere: what no path matches is a 404
    p = plan(ingress("a", rule("foo", path("/x", "web"))))
    assert server(p, "foo").fallback == NOT_FOUND and server(p, "").fallback == NOT_FOUND
    text = render(p, RenderOptions(state_dir="/s"))
    assert "return 404;" in text
    # a default backend serves unknown hosts and the paths no rule takes on the Ingress's hosts
    p = plan(ingress("a", rule("foo", path("/x", "web")), default_backend=backend("api", "grpc")))
    want = Backend(upstream="default-api-grpc")
    assert server(p, "").fallback == want and server(p, "foo").fallback == want
    # only a default backend: every request goes there
    p = plan(ingress("only", default_backend=backend("web")))
    assert [s.host for s in p.servers] == [""] and server(p, "").fallback == Backend(upstream="default-web-http")
    # rules without a host go to the default server
    p = plan(ingress("nohost", rule("", path("/app", "web"))))
    assert ("/app", False) in server(p, "").locations


def test_tls_from_secret_and_redirect() -> None:
    crt, key = self_signed("secure.example.com")
    secrets = {("default", "cert"): tls_secret("cert", crt, key)}
    ing = ingress("a", rule("secure.example.com", path("/", "web")), rule("plain.example.com", path("/", "web")),
                  tls=[{"hosts": ["secure.example.com"], "secretName": "cert"}])
    p = plan(ing, secrets=secrets)
    s = server(p, "secure.example.com")
    assert s.cert and p.certs[s.cert] == crt.rstrip(b"\n") + b"\n" + key.rstrip(b"\n") + b"\n"
    assert s.cert.startswith("default_cert_")
    assert not server(p, "plain.example.com").cert
    text = render(p, RenderOptions(state_dir="/s", http_port=8080, https_port=8443))
    block = text.split("server_name secure.example.com;", 1)[0].rsplit("server {", 1)[1]
    assert "listen 8443 ssl http2;" in block and f"ssl_certificate certs/{s.cert};" in block
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    # HTTP to a TLS host is redirected (308, with the HTTPS port), as ingress-nginx's ssl-redirect default
    assert 'if ($scheme = "http") { return 308 https://$host:8443$request_uri; }' in text
    plain = text.split("server_name plain.example.com;", 1)[1].split("\n    }\n", 1)[0]
    assert "return 308" not in plain
    # ssl-redirect: "false" serves plain HTTP too
    ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"] = "false"
    assert "return 308" not in render(plan(ing, secrets=secrets), RenderOptions(state_dir="/s"))
    # the default HTTPS server refuses handshakes for names without a certificate
    assert "ssl_reject_handshake on;" in text


def test_tls_problems_leave_the_host_without_tls() -> None:
    crt, key = self_signed("a.example.com")
    other_crt, _ = self_signed("b.example.com")
    cases = {
        "missing": ({}, SECRET_NOT_FOUND),
        "wrongtype": ({("default", "c"): tls_secret("c", crt, key, typ="Opaque")}, INVALID_SECRET),
        "mismatch": ({("default", "c"): tls_secret("c", other_crt, key)}, INVALID_SECRET),
        "garbage": ({("default", "c"): tls_secret("c", b"nope", key)}, INVALID_SECRET),
    }
    for what, (secrets, reason) in cases.items():
        p = plan(ingress("a", rule("a.example.com", path("/", "web")),
                         tls=[{"hosts": ["a.example.com"], "secretName": "c"}]), secrets=secrets)
        assert [x.reason for x in p.problems["default/a"]] == [reason], what
        assert not server(p, "a.example.com").cert and not p.certs
        assert server(p, "a.example.com").locations[("/", False)].backend.upstream  # still served over HTTP
    assert cert_problem(other_crt, key) == "tls.key is not the key of the certificate in tls.crt"
    assert cert_problem(crt, key) == ""


def test_tls_entry_without_hosts_is_the_default_servers_certificate() -> None:
    crt, key = self_signed("default.example.com")
    p = plan(ingress("a", rule("", path("/", "web")), tls=[{"secretName": "c"}]),
             secrets={("default", "c"): tls_secret("c", crt, key)})
    assert server(p, "").cert
    text = render(p, RenderOptions(state_dir="/s"))
    default_block = text.split("server_name _;", 1)[0].rsplit("server {", 1)[1]
    assert "ssl_reject_handshake" not in default_block and "ssl_certificate certs/" in default_block


def test_bad_paths_are_problems_not_configuration() -> None:
    p = plan(ingress("a", rule("foo", path('/x";evil', "web"), path("/ok", "web"))))
    assert [x.reason for x in p.problems["default/a"]] == ["InvalidPath"]
    assert list(server(p, "foo").locations) == [("/ok", False)]


def test_render_confines_nginx_to_its_state_dir() -> None:
    text = render(plan(ingress("a", rule("foo", path("/", "web")))),
                  RenderOptions(state_dir="/s", generation=7, status_socket="/s/nginx.sock", ipv6=True))
    assert "daemon off;" in text and "pid nginx.pid;" in text
    assert "/etc/nginx" not in text and "/var/" not in text
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{temp}_temp_path tmp/{temp};" in text
    assert "listen unix:/s/nginx.sock;" in text and 'return 200 "7\\n";' in text
    assert "server_names_hash_max_size 512;" in text
    many = plan(*(ingress(f"i{i}", rule(f"h{i}.test", path("/", "web"))) for i in range(3000)))
    assert "server_names_hash_max_size 8192;" in render(many, RenderOptions(state_dir="/s"))
    assert "listen [::]:80 default_server ipv6only=on;" in text
    assert "listen [::]:80;" in text  # the option once per address (nginx refuses it twice)
    for h in ("X-Forwarded-For $remote_addr", "X-Forwarded-Proto $scheme",
              "X-Forwarded-Host $host", "X-Forwarded-Port $server_port", "X-Real-IP $remote_addr"):
        assert f"proxy_set_header {h};" in text


def test_two_certificates_for_one_host_the_older_wins() -> None:
    crt1, key1 = self_signed("h.example.com")
    crt2, key2 = self_signed("h.example.com")
    secrets = {("default", "c1"): tls_secret("c1", crt1, key1), ("default", "c2"): tls_secret("c2", crt2, key2)}
    old = ingress("old", rule("h.example.com", path("/", "web")), tls=[{"hosts": ["h.example.com"], "secretName": "c1"}],
                  created="2024-01-01T00:00:00Z")
    new = ingress("new", rule("h.example.com", path("/x", "web")), tls=[{"hosts": ["h.example.com"], "secretName": "c2"}],
                  created="2024-02-01T00:00:00Z")
    p = plan(new, old, secrets=secrets)
    assert server(p, "h.example.com").cert.startswith("default_c1_")
    assert [(x.reason, x.message) for x in p.problems["default/new"]] == [
        (CONFLICT, ("spec.tls: host 'h.example.com' already has the certificate of the older Ingress default/old; "
                   "this one's is ignored"))]
    assert "default/old" not in p.problems


def test_location_annotations() -> None:
    ann = {"nginx.ingress.kubernetes.io/proxy-body-size": "8m", "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
           "nginx.ingress.kubernetes.io/proxy-connect-timeout": "5s", "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}
    p = plan(ingress("a", rule("foo", path("/x", "web")), annotations=ann))
    loc = server(p, "foo").locations[("/x", False)]
    assert loc.settings == ("client_max_body_size 8m;", "proxy_read_timeout 120s;")
    assert [(x.reason, x.message) for x in p.problems["default/a"]] == [
        ("InvalidAnnotation", ("annotation nginx.ingress.kubernetes.io/proxy-connect-timeout: '5s' is not seconds, "
                              "such as 10; nginx's default applies")),
        ("UnsupportedAnnotation", ("annotation nginx.ingress.kubernetes.io/backend-protocol is not supported by the "
                                   "k8py-nginx ingress controller; it is ignored"))]
    block = render(p, RenderOptions(state_dir="/s")).split('location "/x/" {', 1)[1].split("}", 1)[0]
    assert "client_max_body_size 8m;" in block and "proxy_read_timeout 120s;" in block


def test_regex_paths_and_rewrite_target() -> None:
    rw = {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"}
    p = plan(ingress("rw", rule("foo", path("/something(/|$)(.*)", "web", "ImplementationSpecific"),
                                path("/exact", "web", "Exact")), annotations=rw),
             ingress("re", rule("bar", path("/v[0-9]+/items", "web", "Prefix")),
                     annotations={"nginx.ingress.kubernetes.io/use-regex": "true"}))
    assert not p.problems
    text = render(p, RenderOptions(state_dir="/s"))
    foo = text.split("server_name foo;", 1)[1].split("\n    }\n", 1)[0]
    assert 'location ~* "^/something(/|$)(.*)" {' in foo
    assert 'rewrite "(?i)/something(/|$)(.*)" /$2 break;' in foo
    assert 'location = "/exact" {' in foo  # Exact stays exact, and is not rewritten
    assert foo.count("rewrite ") == 1
    bar = text.split("server_name bar;", 1)[1].split("\n    }\n", 1)[0]
    assert 'location ~* "^/v[0-9]+/items" {' in bar and "rewrite" not in bar
    # a path that is no regular expression, a target that cannot be written: events, nothing broken
    p = plan(ingress("bad", rule("foo", path("/a(b", "web", "ImplementationSpecific")),
                     annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/x; return 200",
                                  "nginx.ingress.kubernetes.io/use-regex": "true"}))
    assert [x.reason for x in p.problems["default/bad"]] == ["InvalidAnnotation", "InvalidPath"]
    assert "missing ), unterminated subpattern" in p.problems["default/bad"][1].message
