//! `containers` rules: compose structure, TCP port 80, YAML 1.1 port hints, images, binds.

use super::rules_tests::{bad, check, ok, COMPOSE};

fn compose(services: &str) -> String {
    format!("containers:\n  services:\n{services}")
}

#[test]
fn containers_structure() {
    ok(COMPOSE);
    ok("containers: []\n"); // empty: no change requested
    bad("containers: [web]\n", "containers", 1, "a mapping");
    bad(
        "containers:\n  volumes: {}\n",
        "containers",
        2,
        "`services` is required",
    );
    bad(
        "containers:\n  services: {}\n",
        "containers.services",
        2,
        "at least one service",
    );
    bad(
        &compose("    web:\n      ports: [\"80:80\"]\n"),
        "containers.services.web",
        4,
        "`image` is required",
    );
    bad(
        &compose("    web:\n      image:\n"),
        "containers.services.web.image",
        4,
        "found no value",
    );
    bad(
        &compose("    web:\n      image: 3.8\n      ports: [\"80:80\"]\n"),
        "containers.services.web.image",
        4,
        "the number 3.8",
    );
    bad(
        &compose("    web:\n      image: x\n      build: .\n"),
        "containers.services.web.build",
        5,
        "`build` is not supported",
    );
    bad(
        &compose("    web:\n      image: x\n      ports: \"80:80\"\n"),
        "containers.services.web.ports",
        5,
        "must be a list",
    );
    bad(
        &compose("    web:\n      image: x\n      network_mode: host\n      ports: [\"80:80\"]\n"),
        "containers.services.web.ports",
        6,
        "network_mode: host",
    );
}

#[test]
fn containers_need_tcp_port_80() {
    for port in [
        "\"80:80\"",
        "\"0.0.0.0:80:8080\"",
        "\"70-90:70-90\"",
        "\"80:80/tcp\"",
        "{target: 8080, published: 80}",
        "{target: 80, published: \"79-81\", protocol: tcp}",
        "80:80",
    ] {
        ok(&compose(&format!(
            "    web:\n      image: x\n      ports: [{port}]\n"
        )));
    }
    for port in [
        "\"8080:80\"",
        "\"80\"",
        "80",
        "\"80:80/udp\"",
        "{target: 80}",
        "{target: 80, published: 80, protocol: udp}",
        "\"81-90:80\"",
    ] {
        bad(
            &compose(&format!(
                "    web:\n      image: x\n      ports: [{port}]\n"
            )),
            "containers.services",
            3,
            "no service publishes TCP port 80",
        );
    }
    // Port 80 only in another service than the first is fine.
    ok(&compose("    a:\n      image: x\n    b:\n      image: y\n      ports:\n      - \"443:443\"\n      - 127.0.0.1:80:80\n"));
    // `ports:` with no value: no ports (the device and compose agree).
    ok(&compose(
        "    a:\n      image: x\n      ports:\n    b:\n      image: y\n      ports: [\"80:80\"]\n",
    ));
}

#[test]
fn unquoted_sexagesimal_ports_get_a_hint() {
    // `80:40` would publish port 80 once quoted; unquoted YAML 1.1 makes it 80*60+40.
    bad(
        &compose("    web:\n      image: x\n      ports:\n      - 80:40\n"),
        "containers.services.web.ports[0]",
        6,
        "no service publishes TCP port 80, which the device requires; `80:40` unquoted is read by YAML 1.1 as the number 4840; quote it: \"80:40\"",
    );
    // Even with port 80 published elsewhere, a port turned into a number is refused.
    bad(
        &compose("    web:\n      image: x\n      ports:\n      - \"80:80\"\n      - 22:22\n"),
        "containers.services.web.ports[1]",
        7,
        "`22:22` unquoted is read by YAML 1.1 as the number 1342; quote it: \"22:22\"",
    );
}

#[test]
fn images_and_bind_sources() {
    let o = check(&compose(
        "    a:\n      image: ghcr.io/offspot/a:1\n      ports: [\"80:80\"]\n      volumes:\n      - /data/x:/x:ro\n      - named:/n\n      - ./rel:/r\n      - /anon\n\
         \x20   b:\n      image: ghcr.io/offspot/b:2\n      volumes:\n      - {type: bind, source: /data/y, target: /y}\n      - {type: volume, source: v, target: /v}\n      - /data/x:/other\n",
    ))
    .unwrap();
    assert_eq!(
        o.images(),
        vec!["ghcr.io/offspot/a:1", "ghcr.io/offspot/b:2"]
    );
    assert_eq!(o.bind_sources(), vec!["/data/x", "/data/y"]);
}
