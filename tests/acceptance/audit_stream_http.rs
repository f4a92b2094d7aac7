//! Event streams (`/events/v1`) over HTTP through the real binary: SSE, NDJSON and protobuf from any
//! position, filters, `Last-Event-ID` resume, tenants limited to their project, bad input, durable consumers
//! (create/same/conflict, ack without appending, lag, independence, persistence across a restart), a
//! consumer killed again and again mid-scenario that still sees every event exactly once after
//! de-duplicating by position, a client that stops reading being dropped, and the example billing consumer
//! (`examples/instance_hours.rs`, compiled in here with `#[path]`) counting once across a crash.

#[path = "../../examples/instance_hours.rs"]
mod instance_hours;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};
use strata_proto::envelope::EventEnvelope;
use strata_proto::Message;

fn events_url(server: &Server) -> String {
    let audit = server
        .endpoint("audit")
        .expect("the READY line names the audit endpoint");
    format!("{}/events/v1", audit.trim_end_matches("/audit/v1"))
}

/// The log's head, as the consumer list reports it.
fn head(server: &Server, token: &str) -> u64 {
    let v = get(&format!("{}/consumers", events_url(server)), Some(token))
        .expect(200)
        .json();
    v["head"].as_u64().expect("head")
}

/// An event as the SSE stream delivered it.
#[derive(Debug, Clone)]
struct Ev {
    id: u64,
    event: String,
    data: Value,
}

enum Frame {
    Event(Ev),
    Heartbeat,
}

/// An open event stream.
struct Feed {
    reader: BufReader<Box<dyn Read + Send + Sync + 'static>>,
    content_type: String,
}

fn open_with(url: &str, headers: &[(&str, &str)], read_timeout: Duration) -> Result<Feed, Resp> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(read_timeout)
        .build();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.call() {
        Ok(r) => Ok(Feed {
            content_type: r.header("content-type").unwrap_or_default().to_string(),
            reader: BufReader::new(r.into_reader()),
        }),
        Err(ureq::Error::Status(status, r)) => Err(Resp {
            method: "GET".into(),
            url: url.into(),
            status,
            headers: vec![],
            body: r.into_string().unwrap_or_default(),
        }),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Open a stream (heartbeats come every 15 s, so a 30 s read timeout only fires on a dead stream).
fn open(url: &str, token: &str, extra: &[(&str, &str)]) -> Feed {
    let mut headers = vec![("X-Auth-Token", token)];
    headers.extend_from_slice(extra);
    open_with(url, &headers, Duration::from_secs(30))
        .unwrap_or_else(|r| panic!("stream refused: {}", r.describe()))
}

/// The status and error message of a refused stream.
fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    match open_with(url, headers, Duration::from_secs(10)) {
        Ok(f) => panic!("{url} was not refused ({})", f.content_type),
        Err(r) => {
            let v = r.json();
            assert_eq!(v["error"]["code"], r.status, "{}", r.describe());
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(!msg.is_empty(), "{}", r.describe());
            (r.status, msg)
        }
    }
}

impl Feed {
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
        }
    }

    /// The next SSE frame (None when the stream ended or timed out).
    fn frame(&mut self) -> Option<Frame> {
        let (mut id, mut event, mut data, mut comment) = (None, None, None, false);
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if let (Some(id), Some(event), Some(data)) = (id, event.clone(), data.clone()) {
                    return Some(Frame::Event(Ev { id, event, data }));
                }
                if comment {
                    return Some(Frame::Heartbeat);
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                assert!(c.trim().starts_with("heartbeat"), "comment {line:?}");
                comment = true;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().expect("numeric id"));
            } else if let Some(v) = line.strip_prefix("event: ") {
                event = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(v).expect("data is one JSON line"));
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
    }

    /// The next SSE event (heartbeats skipped); panics when the stream ends first.
    fn event(&mut self) -> Ev {
        loop {
            match self.frame() {
                Some(Frame::Event(e)) => return e,
                Some(Frame::Heartbeat) => continue,
                None => panic!("the stream ended before the next event"),
            }
        }
    }

    fn events(&mut self, n: usize) -> Vec<Ev> {
        (0..n).map(|_| self.event()).collect()
    }

    /// Events until (and including) the one at `position` or later.
    fn until(&mut self, position: u64) -> Vec<Ev> {
        let mut out = Vec::new();
        while out.last().is_none_or(|e: &Ev| e.id < position) {
            out.push(self.event());
        }
        out
    }

    /// The next NDJSON event (heartbeat lines skipped).
    fn json(&mut self) -> Value {
        loop {
            let line = self.line().expect("the NDJSON stream ended");
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line).expect("an NDJSON line is JSON");
            if v.get("heartbeat").is_some() {
                assert!(v["heartbeat"]["position"].is_u64(), "{v}");
                continue;
            }
            return v;
        }
    }

    /// The next length-delimited envelope (empty heartbeat messages skipped).
    fn envelope(&mut self) -> EventEnvelope {
        loop {
            let mut len = 0u64;
            let mut shift = 0;
            loop {
                let mut b = [0u8; 1];
                self.reader.read_exact(&mut b).expect("protobuf stream");
                len |= u64::from(b[0] & 0x7f) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 {
                    break;
                }
            }
            if len == 0 {
                continue;
            }
            let mut buf = vec![0u8; len as usize];
            self.reader.read_exact(&mut buf).expect("protobuf message");
            return EventEnvelope::decode(&buf[..]).expect("an EventEnvelope");
        }
    }
}

/// Which events a filter case keeps.
type Keep = Box<dyn Fn(&Ev) -> bool>;

fn positions(evs: &[Ev]) -> Vec<u64> {
    evs.iter().map(|e| e.id).collect()
}

/// Some events of every kind: a flavor and servers (compute), an image, projects and users (identity).
struct Cloud {
    server: Server,
    nova: String,
    events: String,
    token: String,
    flavor: String,
    image: String,
}

fn cloud(args: &[&str]) -> Cloud {
    let server = Server::start_with_args(args);
    let nova = nova_url(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.tiny", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(16 * 1024));
    Cloud {
        events: events_url(&server),
        server,
        nova,
        token,
        flavor,
        image,
    }
}

fn boot_active(c: &Cloud, token: &str, name: &str) -> String {
    let id = boot(&c.nova, token, name, &c.flavor, &c.image, json!({}));
    wait_status(&c.nova, token, &id, "ACTIVE");
    id
}

#[test]
fn sse_ndjson_and_protobuf_from_any_position_with_filters() {
    let c = cloud(&[]);
    let (pa, _, _) = new_member(&c.server, &c.token, "pa", "alice");
    let h = head(&c.server, &c.token);
    let url = format!("{}/stream", c.events);

    // SSE from 0: every position from 1 to the head, in order, id = data.position, event = data.type.
    let mut feed = open(&format!("{url}?from=0"), &c.token, &[]);
    assert!(
        feed.content_type.starts_with("text/event-stream"),
        "{}",
        feed.content_type
    );
    let all = feed.until(h);
    assert_eq!(
        positions(&all),
        (1..=h).collect::<Vec<_>>(),
        "dense and ordered"
    );
    for e in &all {
        assert_eq!(e.data["position"], e.id);
        assert_eq!(e.data["type"], e.event.as_str());
        let category = e.event.split('.').next().unwrap();
        assert_eq!(e.data["category"], category);
        assert!(e.data["project"].is_string(), "{}", e.data);
        assert!(e.data["payload"].is_object(), "{}", e.data);
        assert_eq!(e.data["hash"].as_str().map(str::len), Some(64));
    }
    let types: BTreeSet<&str> = all.iter().map(|e| e.event.as_str()).collect();
    for t in [
        "compute.FlavorCreated.v1",
        "image.ImageCreated.v1",
        "identity.ProjectCreated.v1",
        "identity.UserCreated.v1",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }

    // from=N starts after N; Last-Event-ID takes precedence over from.
    let n = h / 2;
    assert_eq!(
        open(&format!("{url}?from={n}"), &c.token, &[]).event().id,
        n + 1
    );
    let k = n.to_string();
    assert_eq!(
        open(&format!("{url}?from=0"), &c.token, &[("Last-Event-ID", &k)])
            .event()
            .id,
        n + 1
    );
    // from=now: only what comes next.
    let mut live = open(&format!("{url}?from=now"), &c.token, &[]);
    let h1 = head(&c.server, &c.token);
    create_flavor(&c.nova, &c.token, "m1.live", 1, 256, 1);
    let mut prev = live.event();
    assert!(
        prev.id > h && prev.id <= h1 + 1,
        "{} after head {h}/{h1}",
        prev.id
    );
    while !(prev.event == "compute.FlavorCreated.v1" && prev.data["payload"]["name"] == "m1.live") {
        let e = live.event();
        assert_eq!(e.id, prev.id + 1, "no gap in the live stream");
        prev = e;
    }

    // Filters: the stream carries exactly the matching events, in order.
    let cases: Vec<(String, Keep)> = vec![
        (
            "category=compute".into(),
            Box::new(|e| e.event.starts_with("compute.")),
        ),
        (
            "category=identity,image".into(),
            Box::new(|e| e.event.starts_with("identity.") || e.event.starts_with("image.")),
        ),
        (
            "type=FlavorCreated".into(),
            Box::new(|e| e.event == "compute.FlavorCreated.v1"),
        ),
        (
            "type=identity.UserCreated.v1,ImageCreated".into(),
            Box::new(|e| {
                e.event == "identity.UserCreated.v1" || e.event == "image.ImageCreated.v1"
            }),
        ),
        (
            format!("project={pa}"),
            Box::new(move |e| e.data["project"] == pa.as_str()),
        ),
        (
            "category=identity&type=ProjectCreated".into(),
            Box::new(|e| e.event == "identity.ProjectCreated.v1"),
        ),
    ];
    for (query, keep) in cases {
        let expected: Vec<u64> = all.iter().filter(|e| keep(e)).map(|e| e.id).collect();
        assert!(!expected.is_empty(), "{query}: nothing to expect");
        let got = open(&format!("{url}?from=0&{query}"), &c.token, &[]).events(expected.len());
        assert_eq!(positions(&got), expected, "{query}");
    }

    // NDJSON: the same JSON, one per line.
    let mut nd = open(
        &format!("{url}?from=0"),
        &c.token,
        &[("Accept", "application/x-ndjson")],
    );
    assert!(
        nd.content_type.starts_with("application/x-ndjson"),
        "{}",
        nd.content_type
    );
    for e in &all {
        assert_eq!(nd.json(), e.data, "position {}", e.id);
    }

    // Protobuf: the stored envelopes, length-delimited.
    let mut pb = open(
        &format!("{url}?from=0"),
        &c.token,
        &[("Accept", "application/x-protobuf")],
    );
    assert!(
        pb.content_type.starts_with("application/x-protobuf"),
        "{}",
        pb.content_type
    );
    for e in &all {
        let env = pb.envelope();
        assert_eq!(env.position, e.id);
        assert_eq!(env.event_type, e.event);
        assert_eq!(env.stream_id, e.data["stream"].as_str().unwrap());
        assert_eq!(hex_of(&env.hash), e.data["hash"].as_str().unwrap());
        let payload = strata_proto::codec::event_json(&env.event_type, &env.payload)
            .expect("known type")
            .expect("decodes");
        assert_eq!(payload, e.data["payload"], "position {}", e.id);
    }

    // Bad input: 400 with a message; no token: 401.
    let t = c.token.as_str();
    for q in [
        "from=-1",
        "from=abc",
        "from=999999999",
        "colour=red",
        "category=computer",
        "category=",
        "type=compute.NoSuchEvent.v1",
        "type=not%20a%20type",
        "project=",
    ] {
        let (status, msg) = refused(&format!("{url}?{q}"), &[("X-Auth-Token", t)]);
        assert_eq!(status, 400, "{q}: {msg}");
    }
    let (status, msg) = refused(
        &format!("{url}?from=0"),
        &[("X-Auth-Token", t), ("Last-Event-ID", "yesterday")],
    );
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("Last-Event-ID"), "{msg}");
    let (status, msg) = refused(&format!("{url}?from=x"), &[("X-Auth-Token", t)]);
    assert!(
        msg.contains("from") && msg.contains("now"),
        "{status} {msg}"
    );
    assert_eq!(refused(&format!("{url}?from=0"), &[]).0, 401);
    assert_eq!(
        refused(&format!("{url}?from=0"), &[("X-Auth-Token", "not-a-token")]).0,
        401
    );
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tenants_see_only_their_projects_events() {
    let c = cloud(&[]);
    let (pa, _, alice) = new_member(&c.server, &c.token, "pa", "alice");
    let (pb, _, bob) = new_member(&c.server, &c.token, "pb", "bob");
    let a1 = boot_active(&c, &alice, "a1");
    let b1 = boot_active(&c, &bob, "b1");
    let h = head(&c.server, &c.token);
    let url = format!("{}/stream", c.events);
    let all = open(&format!("{url}?from=0"), &c.token, &[]).until(h);
    let of = |p: &str| -> Vec<u64> {
        all.iter()
            .filter(|e| e.data["project"] == p)
            .map(|e| e.id)
            .collect()
    };
    let (in_a, in_b) = (of(&pa), of(&pb));
    assert!(in_a.len() >= 4 && in_b.len() >= 4, "{in_a:?} {in_b:?}");

    // Alice's stream from 0 is exactly project A's events: her server's included, Bob's not.
    let mine = open(&format!("{url}?from=0"), &alice, &[]).events(in_a.len());
    assert_eq!(positions(&mine), in_a);
    assert!(mine.iter().all(|e| e.data["project"] == pa.as_str()));
    assert!(mine
        .iter()
        .any(|e| e.data["resource"]["id"] == a1.as_str() && e.event == "compute.ServerSpawned.v1"));
    assert!(!mine.iter().any(|e| e.data["resource"]["id"] == b1.as_str()));
    // Naming her own project is the same; naming Bob's is refused.
    let same = open(
        &format!("{url}?from=0&project={pa}&category=compute"),
        &alice,
        &[],
    )
    .event();
    assert_eq!(same.data["project"], pa.as_str());
    let (status, msg) = refused(
        &format!("{url}?from=0&project={pb}"),
        &[("X-Auth-Token", &alice)],
    );
    assert_eq!(status, 403, "{msg}");
    assert_eq!(
        refused(
            &format!("{url}?from=0&project={pa}"),
            &[("X-Auth-Token", &bob)]
        )
        .0,
        403
    );
    let bobs = open(&format!("{url}?from=0"), &bob, &[]).events(in_b.len());
    assert_eq!(positions(&bobs), in_b);

    // Durable consumers follow the same rule.
    let r = request(
        "PUT",
        &format!("{}/consumers/spy", c.events),
        Some(&alice),
        Some(&json!({"filter": {"project": pb}})),
    );
    assert_eq!(r.status, 403, "{}", r.describe());
    let r = request(
        "PUT",
        &format!("{}/consumers/mine", c.events),
        Some(&alice),
        Some(&json!({"filter": {"category": "compute"}})),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let got = open(&format!("{}/consumers/mine/stream", c.events), &alice, &[]).event();
    assert_eq!(got.data["project"], pa.as_str());
    assert_eq!(got.data["category"], "compute");
}

fn consumer(c: &Cloud, token: &str, name: &str) -> Resp {
    get(&format!("{}/consumers/{name}", c.events), Some(token))
}

fn put_consumer(c: &Cloud, token: &str, name: &str, body: &Value) -> Resp {
    request(
        "PUT",
        &format!("{}/consumers/{name}", c.events),
        Some(token),
        Some(body),
    )
}

fn ack(c: &Cloud, token: &str, name: &str, position: Value) -> Resp {
    post(
        &format!("{}/consumers/{name}/ack", c.events),
        Some(token),
        &json!({ "position": position }),
    )
}

fn admin_user_id(c: &Cloud) -> String {
    find_by_name(c.server.identity_url(), &c.token, "users", "admin").expect("admin user")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn durable_consumers_store_positions_beside_the_log() {
    let mut c = cloud(&[]);
    let h0 = head(&c.server, &c.token);

    // Create, the same again (either spelling), another filter: 201, 200, 409.
    let created = put_consumer(
        &c,
        &c.token,
        "c1",
        &json!({"filter": {"category": "compute"}, "from": 0}),
    );
    assert_eq!(created.status, 201, "{}", created.describe());
    assert!(created
        .header("location")
        .is_some_and(|l| l.ends_with("/events/v1/consumers/c1")));
    let v = created.json()["consumer"].clone();
    assert_eq!(
        (v["name"].as_str(), v["position"].as_u64()),
        (Some("c1"), Some(0))
    );
    assert_eq!(v["scope"], "global");
    assert!(v["lag"].as_u64().unwrap() >= h0);
    let again = put_consumer(
        &c,
        &c.token,
        "c1",
        &json!({"filter": {"category": ["compute"]}, "from": "now"}),
    );
    assert_eq!(again.status, 200, "{}", again.describe());
    assert_eq!(
        again.json()["consumer"]["position"],
        0,
        "the position is kept"
    );
    let clash = put_consumer(
        &c,
        &c.token,
        "c1",
        &json!({"filter": {"category": "image"}}),
    );
    assert_eq!(clash.status, 409, "{}", clash.describe());
    let c2 = put_consumer(&c, &c.token, "c2", &json!({"from": "now"}));
    assert_eq!(c2.status, 201, "{}", c2.describe());
    let c2_position = c2.json()["consumer"]["position"].as_u64().unwrap();
    assert!(c2_position >= h0);

    // Bad bodies and names: 400; unknown consumers: 404.
    let url = format!("{}/consumers", c.events);
    for body in [
        "{",
        "[]",
        r#"{"start": 0}"#,
        r#"{"filter": {"colour": "red"}}"#,
        r#"{"filter": {"category": "computer"}}"#,
        r#"{"filter": "compute"}"#,
        r#"{"from": -5}"#,
        r#"{"from": "later"}"#,
        r#"{"from": 99999999}"#,
    ] {
        let r = request_raw(
            "PUT",
            &format!("{url}/c3"),
            &[("X-Auth-Token", &c.token)],
            Some(body),
        )
        .unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.describe());
        assert!(r.json()["error"]["message"].is_string());
    }
    let r = put_consumer(&c, &c.token, "-bad", &json!({}));
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_eq!(consumer(&c, &c.token, "nope").status, 404);
    assert_eq!(ack(&c, &c.token, "nope", json!(1)).status, 404);
    assert_eq!(delete(&format!("{url}/nope"), Some(&c.token)).status, 404);
    let (status, _) = refused(&format!("{url}/nope/stream"), &[("X-Auth-Token", &c.token)]);
    assert_eq!(status, 404);
    assert_eq!(get(&url, None).status, 401);

    // The consumer's stream: its filter, from its position.
    let first = open(&format!("{url}/c1/stream"), &c.token, &[]).events(5);
    assert!(first.iter().all(|e| e.event.starts_with("compute.")));
    assert!(first.windows(2).all(|w| w[0].id < w[1].id));
    let p = first[3].id;

    // An ack moves the position and appends nothing: no event after it carries the admin as principal.
    let before = head(&c.server, &c.token);
    let r = ack(&c, &c.token, "c1", json!(p)).expect(200);
    assert_eq!(r.json()["consumer"]["position"], p);
    for _ in 0..5 {
        ack(&c, &c.token, "c1", json!(p)).expect(200);
    }
    let after = head(&c.server, &c.token);
    if after > before {
        let admin = admin_user_id(&c);
        let extra = open(&format!("{}/stream?from={before}", c.events), &c.token, &[]).until(after);
        for e in extra {
            assert_ne!(
                e.data["principal"]["user_id"],
                admin.as_str(),
                "an ack appended {}",
                e.data
            );
        }
    }
    let v = consumer(&c, &c.token, "c1").expect(200).json()["consumer"].clone();
    assert_eq!(v["position"], p);
    assert_eq!(v["lag"].as_u64().unwrap(), v["head"].as_u64().unwrap() - p);
    assert!(v["acked_at"].is_string());
    // Forward only, never beyond the head, a number.
    assert_eq!(ack(&c, &c.token, "c1", json!(p - 1)).status, 400);
    assert_eq!(ack(&c, &c.token, "c1", json!(after + 1000)).status, 400);
    assert_eq!(ack(&c, &c.token, "c1", json!("ten")).status, 400);
    let r = request_raw(
        "POST",
        &format!("{url}/c1/ack"),
        &[("X-Auth-Token", &c.token)],
        Some("{}"),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.describe());

    // It streams from there; Last-Event-ID further on wins.
    assert_eq!(
        open(&format!("{url}/c1/stream"), &c.token, &[]).event().id,
        first[4].id
    );
    let later = first[4].id.to_string();
    let resumed = open(
        &format!("{url}/c1/stream"),
        &c.token,
        &[("Last-Event-ID", &later)],
    )
    .event();
    assert!(resumed.id > first[4].id);

    // The list shows both with their lag; c2 did not move.
    let list = get(&url, Some(&c.token)).expect(200).json();
    let by_name: BTreeMap<String, Value> = list["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect();
    assert_eq!(by_name.keys().collect::<Vec<_>>(), ["c1", "c2"]);
    let lh = list["head"].as_u64().unwrap();
    assert_eq!(by_name["c1"]["lag"].as_u64(), Some(lh - p));
    assert_eq!(by_name["c2"]["position"].as_u64(), Some(c2_position));
    assert_eq!(by_name["c2"]["lag"].as_u64(), Some(lh - c2_position));

    // Tenants: names per project, invisible to the admin's list and to each other.
    let (_, _, alice) = new_member(&c.server, &c.token, "pa", "alice");
    let (_, _, bob) = new_member(&c.server, &c.token, "pb", "bob");
    for t in [&alice, &bob] {
        let r = put_consumer(
            &c,
            t,
            "billing",
            &json!({"filter": {"category": "compute"}}),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
        assert_eq!(r.json()["consumer"]["scope"], "project");
    }
    let hb = head(&c.server, &c.token);
    ack(&c, &alice, "billing", json!(hb)).expect(200);
    assert_eq!(
        consumer(&c, &bob, "billing").expect(200).json()["consumer"]["position"],
        0
    );
    let alices = get(&url, Some(&alice)).expect(200).json();
    assert_eq!(alices["consumers"].as_array().unwrap().len(), 1);
    assert_eq!(alices["consumers"][0]["position"], hb);
    assert_eq!(
        consumer(&c, &c.token, "billing").status,
        404,
        "not the admin's"
    );

    // Delete; the rest survives a restart with its position.
    assert_eq!(delete(&format!("{url}/c2"), Some(&c.token)).status, 204);
    assert_eq!(consumer(&c, &c.token, "c2").status, 404);
    c.server.restart();
    c.events = events_url(&c.server);
    c.token = c.server.admin_token();
    assert_eq!(
        consumer(&c, &c.token, "c1").expect(200).json()["consumer"]["position"],
        p
    );
    assert_eq!(consumer(&c, &c.token, "c2").status, 404);
    assert_eq!(
        consumer(&c, &alice_token(&c), "billing").expect(200).json()["consumer"]["position"],
        hb
    );
}

fn alice_token(c: &Cloud) -> String {
    get_token(c.server.identity_url(), "alice", "pw-alice", Some("pa")).unwrap()
}

/// The acceptance scenario: a consumer that is killed (its connection dropped, sometimes before it acked
/// what it read) again and again while servers, images and identity change, and that resumes from its
/// stored position each time, sees every event of the log exactly once after de-duplicating by position.
#[test]
fn a_consumer_killed_and_restarted_sees_every_event_once() {
    let c = cloud(&["--fake-hosts", "2"]);
    let (_, _, alice) = new_member(&c.server, &c.token, "pa", "alice");
    put_consumer(&c, &c.token, "all", &json!({"from": 0})).expect(201);

    let scenario = {
        let (nova, token, flavor, image) = (
            c.nova.clone(),
            c.token.clone(),
            c.flavor.clone(),
            c.image.clone(),
        );
        let identity = c.server.identity_url().to_string();
        let img = c.server.endpoint("image").unwrap().to_string();
        let alice = alice.clone();
        std::thread::spawn(move || {
            let big = create_flavor(&nova, &token, "m1.big", 2, 1024, 2);
            let mut ids = Vec::new();
            for (i, t) in [&token, &alice, &alice].iter().enumerate() {
                let id = boot(&nova, t, &format!("s{i}"), &flavor, &image, json!({}));
                wait_status(&nova, t, &id, "ACTIVE");
                ids.push(id);
            }
            action(
                &nova,
                &token,
                &ids[0],
                json!({"resize": {"flavorRef": big}}),
            )
            .expect(202);
            wait_status(&nova, &token, &ids[0], "VERIFY_RESIZE");
            action(&nova, &token, &ids[0], json!({"confirmResize": null})).expect(204);
            wait_status(&nova, &token, &ids[0], "ACTIVE");
            action(&nova, &alice, &ids[1], json!({"os-stop": null})).expect(202);
            wait_status(&nova, &alice, &ids[1], "SHUTOFF");
            delete(&format!("{nova}/servers/{}", ids[2]), Some(&alice)).expect(204);
            wait_gone(&nova, &alice, &ids[2]);
            for i in 0..5 {
                post(
                    &format!("{identity}/projects"),
                    Some(&token),
                    &json!({"project": {"name": format!("extra-{i}")}}),
                )
                .expect(201);
            }
            post(
                &format!("{img}/v2/images"),
                Some(&token),
                &json!({"name": "later", "disk_format": "raw", "container_format": "bare"}),
            )
            .expect(201);
        })
    };

    let stream_url = format!("{}/consumers/all/stream", c.events);
    let mut seen: Vec<u64> = Vec::new();
    let mut acked = 0u64;
    let mut rng = Rng::from_time();
    let mut kills = 0;
    let mut mid_scenario = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut final_head = None;
    loop {
        assert!(Instant::now() < deadline, "the consumer never caught up");
        if final_head.is_none() && scenario.is_finished() {
            final_head = Some(head(&c.server, &c.token));
        }
        if let Some(h) = final_head {
            if acked >= h {
                break;
            }
        }
        // One life of the consumer: read some events (a short read timeout kills it when idle), ack part of
        // what it read, then die without a word.
        let Ok(mut feed) = open_with(
            &stream_url,
            &[("X-Auth-Token", &c.token)],
            Duration::from_millis(700),
        ) else {
            panic!("the consumer's stream was refused");
        };
        let want = 1 + (rng.next_u64() % 12) as usize;
        let mut life = Vec::new();
        while life.len() < want {
            match feed.frame() {
                Some(Frame::Event(e)) => life.push(e.id),
                Some(Frame::Heartbeat) => {}
                None => break,
            }
        }
        if let Some(first) = life.first() {
            assert_eq!(
                *first,
                acked + 1,
                "each life resumes right after the stored position"
            );
        }
        assert!(
            life.windows(2).all(|w| w[1] == w[0] + 1),
            "in order, no gap: {life:?}"
        );
        seen.extend(&life);
        // Ack all of it, part of it, or nothing (killed before acking).
        let keep = match rng.next_u64() % 3 {
            0 => life.len(),
            1 => life.len() / 2,
            _ => 0,
        };
        if keep > 0 {
            acked = life[keep - 1];
            ack(&c, &c.token, "all", json!(acked)).expect(200);
        }
        drop(feed);
        kills += 1;
        if !scenario.is_finished() {
            mid_scenario += 1;
        }
    }
    scenario.join().expect("the scenario ran");
    let h = final_head.unwrap();
    let unique: BTreeSet<u64> = seen.iter().copied().filter(|p| *p <= h).collect();
    assert_eq!(
        unique,
        (1..=h).collect::<BTreeSet<_>>(),
        "every event, exactly once after de-duplication"
    );
    assert!(
        mid_scenario > 0,
        "the consumer was never killed mid-scenario"
    );
    eprintln!(
        "{} events, {} deliveries over {kills} lives ({mid_scenario} killed mid-scenario)",
        unique.len(),
        seen.len()
    );
}

/// A client that connects and never reads, while big events are appended, is dropped once its stream has
/// waited 5 s on it; the server stays responsive and the client resumes where it got to.
#[test]
fn a_client_that_stops_reading_is_dropped() {
    let server = Server::start();
    let token = server.admin_token();
    let events = events_url(&server);
    let addr = events
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut sock = TcpStream::connect(&addr).expect("connect");
    write!(
        sock,
        "GET /events/v1/stream?from=0 HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    sock.flush().unwrap();

    // ~25 MB of events (a 32 KB description each): more than the kernel's socket buffers and the
    // stream's bounded channel hold together.
    let identity = server.identity_url().to_string();
    let project = post(
        &format!("{identity}/projects"),
        Some(&token),
        &json!({"project": {"name": "big"}}),
    )
    .expect(201)
    .json()["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (identity, token, project) = (identity.clone(), token.clone(), project.clone());
            std::thread::spawn(move || {
                for i in (w..800).step_by(4) {
                    let description: String = format!("{i:08}").repeat(4000);
                    patch(
                        &format!("{identity}/projects/{project}"),
                        Some(&token),
                        &json!({"project": {"description": description}}),
                    )
                    .expect(200);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let h = head(&server, &token);
    assert!(h > 800);

    // The server answers others meanwhile.
    let started = Instant::now();
    get(&format!("{events}/consumers"), Some(&token)).expect(200);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Past the 5 s allowance the connection is shut down: reading now drains what the kernel held and
    // then ends (a live stream would instead send a heartbeat every 15 s and never end).
    std::thread::sleep(Duration::from_secs(8));
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        assert!(Instant::now() < deadline, "the connection stayed open");
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the slow client's connection was not closed ({e}) after {} bytes",
                received.len()
            ),
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{}", truncate(&text, 300));
    let last = text
        .match_indices("\nid: ")
        .filter_map(|(i, _)| text[i + 5..].split('\n').next()?.trim().parse::<u64>().ok())
        .last()
        .expect("some events arrived before the stream was dropped");
    assert!(last < h, "the stream was cut short ({last} of {h})");
    assert!(
        server.log_tail(5000).contains("stopped reading"),
        "the server says why it dropped the stream"
    );

    // The client resumes exactly after the last event it got.
    let resumed = open(
        &format!("{events}/stream"),
        &token,
        &[("Last-Event-ID", &last.to_string())],
    )
    .event();
    assert_eq!(resumed.id, last + 1);
}

/// The example billing consumer: instance-hours per project, the same whether it ran once or crashed
/// between saving its state and acknowledging (and so saw events again after restarting).
#[test]
fn the_instance_hours_example_counts_once_across_a_crash() {
    use instance_hours::{run, Options, Tally};
    let c = cloud(&[]);
    let (pa, _, alice) = new_member(&c.server, &c.token, "pa", "alice");
    let (pb, _, bob) = new_member(&c.server, &c.token, "pb", "bob");
    let a1 = boot_active(&c, &alice, "a1");
    let a2 = boot_active(&c, &alice, "a2");
    boot_active(&c, &bob, "b1");
    action(&c.nova, &alice, &a2, json!({"os-stop": null})).expect(202);
    wait_status(&c.nova, &alice, &a2, "SHUTOFF");

    let dir = tempfile::tempdir().unwrap();
    let url = c.server.endpoint("audit").unwrap().to_string();
    let opts = |name: &str| {
        let mut o = Options::new(&url, &c.token, &dir.path().join(format!("{name}.json")));
        o.consumer = name.to_string();
        o.once = true;
        o
    };
    // B crashes after a few events: its state is saved, its ack never sent.
    let mut crash = opts("ih-b");
    crash.stop_after = Some(12);
    let partial = run(&crash).expect("first life");
    let stored = consumer(&c, &c.token, "ih-b").expect(200).json()["consumer"]["position"]
        .as_u64()
        .unwrap();
    assert!(
        stored < partial.position,
        "the crash came before the ack ({stored} vs {})",
        partial.position
    );
    assert_eq!(Tally::load(&crash.state).unwrap(), partial);

    // More happens; then B restarts (re-reading what it had not acked) and A runs once, uninterrupted.
    delete(&format!("{}/servers/{a1}", c.nova), Some(&alice)).expect(204);
    wait_gone(&c.nova, &alice, &a1);
    action(&c.nova, &alice, &a2, json!({"os-start": null})).expect(202);
    wait_status(&c.nova, &alice, &a2, "ACTIVE");
    boot_active(&c, &bob, "b2");
    let b = run(&opts("ih-b")).expect("second life");
    let a = run(&opts("ih-a")).expect("one run");

    assert_eq!(b.closed, a.closed, "finished running time");
    assert_eq!(b.servers, a.servers, "running servers and since when");
    let stored = consumer(&c, &c.token, "ih-b").expect(200).json()["consumer"]["position"]
        .as_u64()
        .unwrap();
    assert_eq!(stored, b.position, "the final position is acknowledged");
    assert_eq!(Tally::load(&opts("ih-b").state).unwrap(), b);
    eprint!("{}", b.table());
    let hours = b.hours();
    assert_eq!(hours[&pa].0, 1, "a2 runs again, a1 is gone: {}", b.table());
    assert_eq!(hours[&pb].0, 2, "b1 and b2 run: {}", b.table());
    assert!(
        b.closed[&pa] > 0,
        "a1 and a2 ran for a while: {}",
        b.table()
    );
    assert!(
        !b.closed.contains_key(&pb),
        "nothing of B stopped: {}",
        b.table()
    );
    assert!(b.table().contains(&pa));

    // Run again: nothing new to count, nothing counted twice.
    let again = run(&opts("ih-b")).expect("third life");
    assert_eq!(again.closed, b.closed);
    assert_eq!(again.servers, b.servers);
}
