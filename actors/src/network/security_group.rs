//! `SecurityGroup`: a project's security group with its rules (stream `security-group-<uuid>`). Rules are
//! entities inside the group's aggregate, so "a rule that duplicates another is refused" is decided by one
//! append with the group's expected version: two concurrent identical rules cannot both be recorded.
//!
//! The pure rule checks Neutron makes (protocol names and numbers, port ranges, ICMP type/code, remote
//! prefix vs ethertype, remote prefix vs remote group) live here too, so the API validates with the same
//! code before it sends any command.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

use super::ipam::Cidr;
use super::net::revision_mismatch;
use crate::aggregate::{Aggregate, DomainError};

/// The name of the group every project gets.
pub const DEFAULT_GROUP_NAME: &str = "default";

/// IP protocol names Neutron accepts in rules, with their IANA numbers. `icmpv6` is the legacy spelling of
/// `ipv6-icmp`.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// Protocols whose rules may carry a port range (TCP, UDP, DCCP, SCTP, UDP-Lite).
const PORT_PROTOCOLS: &[u8] = &[6, 17, 33, 132, 136];
/// Protocols whose "port range" is an ICMP type (min) and code (max).
const ICMP_PROTOCOLS: &[u8] = &[1, 58];
/// Protocols that only make sense with IPv6.
const IPV6_ONLY_PROTOCOLS: &[u8] = &[41, 43, 44, 58, 59, 60];

/// A rule as recorded (the API's JSON is built from it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// `ingress` | `egress`
    pub direction: String,
    /// `IPv4` | `IPv6`
    pub ethertype: String,
    /// A protocol name (lowercase) or number as the caller gave it; `None` = any.
    pub protocol: Option<String>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    /// A canonical CIDR (the network address / prefix length).
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
}

/// What makes two rules the same rule.
#[derive(Debug, PartialEq, Eq)]
struct RuleKey<'a> {
    direction: &'a str,
    ethertype: &'a str,
    protocol: Option<u8>,
    port_range_min: Option<u32>,
    port_range_max: Option<u32>,
    remote_ip_prefix: Option<&'a str>,
    remote_group_id: Option<&'a str>,
}

impl Rule {
    /// Protocols compared by number, an "any address" prefix equal to no prefix, the description ignored.
    fn key(&self) -> RuleKey<'_> {
        RuleKey {
            direction: &self.direction,
            ethertype: &self.ethertype,
            protocol: self.protocol.as_deref().and_then(protocol_number),
            port_range_min: self.port_range_min,
            port_range_max: self.port_range_max,
            remote_ip_prefix: self
                .remote_ip_prefix
                .as_deref()
                .filter(|p| *p != "0.0.0.0/0" && *p != "::/0"),
            remote_group_id: self.remote_group_id.as_deref(),
        }
    }

    fn to_pb(&self) -> pb::SecurityGroupRule {
        pb::SecurityGroupRule {
            rule_id: self.id.clone(),
            direction: self.direction.clone(),
            ethertype: self.ethertype.clone(),
            protocol: self.protocol.clone().unwrap_or_default(),
            port_range_min: self.port_range_min,
            port_range_max: self.port_range_max,
            remote_ip_prefix: self.remote_ip_prefix.clone().unwrap_or_default(),
            remote_group_id: self.remote_group_id.clone().unwrap_or_default(),
            description: self.description.clone(),
        }
    }

    fn from_pb(r: &pb::SecurityGroupRule) -> Rule {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Rule {
            id: r.rule_id.clone(),
            direction: r.direction.clone(),
            ethertype: r.ethertype.clone(),
            protocol: opt(&r.protocol),
            port_range_min: r.port_range_min,
            port_range_max: r.port_range_max,
            remote_ip_prefix: opt(&r.remote_ip_prefix),
            remote_group_id: opt(&r.remote_group_id),
            description: r.description.clone(),
        }
    }
}

/// The number of a protocol given by name or number (`None` for an unknown name or a number past 255).
pub fn protocol_number(p: &str) -> Option<u8> {
    if let Ok(n) = p.parse::<u16>() {
        return u8::try_from(n).ok();
    }
    let lower = p.to_ascii_lowercase();
    PROTOCOLS.iter().find(|(n, _)| *n == lower).map(|(_, v)| *v)
}

/// A rule as a caller asked for it, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleRequest {
    pub direction: String,
    /// `None` = IPv4 (Neutron's default).
    pub ethertype: Option<String>,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: String,
}

/// A refused rule: the Neutron exception name (the fault's `type`) and its message. Every one is a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub kind: &'static str,
    pub message: String,
}

impl From<RuleError> for DomainError {
    fn from(e: RuleError) -> Self {
        DomainError::Invalid(format!("{}: {}", e.kind, e.message))
    }
}

fn rule_error(kind: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        kind,
        message: message.into(),
    }
}

/// Check a requested rule the way Neutron does and return it as it would be recorded (protocol lowercased,
/// ethertype capitalised, prefix canonical). References (the group, the remote group) are the caller's to
/// check.
pub fn check_rule(id: &str, req: &RuleRequest) -> Result<Rule, RuleError> {
    if req.direction != "ingress" && req.direction != "egress" {
        return Err(rule_error(
            "HTTPBadRequest",
            format!(
                "Invalid input for direction. Reason: '{}' is not in ['ingress', 'egress'].",
                req.direction
            ),
        ));
    }
    let ethertype = match req.ethertype.as_deref() {
        None => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv4") => "IPv4".to_string(),
        Some(e) if e.eq_ignore_ascii_case("ipv6") => "IPv6".to_string(),
        Some(e) => {
            return Err(rule_error(
                "HTTPBadRequest",
                format!("Invalid input for ethertype. Reason: '{e}' is not in ['IPv4', 'IPv6']."),
            ))
        }
    };
    let protocol = match req.protocol.as_deref() {
        None | Some("") => None,
        Some(p) => {
            if protocol_number(p).is_none() {
                let names: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
                return Err(rule_error(
                    "SecurityGroupRuleInvalidProtocol",
                    format!(
                        "Security group rule protocol {p} not supported. Only protocol values {names:?} and integer representations [0 to 255] are supported."
                    ),
                ));
            }
            Some(p.to_ascii_lowercase())
        }
    };
    let number = protocol.as_deref().and_then(protocol_number);
    let port = |v: Option<i64>| -> Result<Option<u32>, RuleError> {
        match v {
            None => Ok(None),
            Some(p) if (0..=65535).contains(&p) => Ok(Some(p as u32)),
            Some(p) => Err(rule_error(
                "SecurityGroupInvalidPortValue",
                format!("Invalid value for port {p}"),
            )),
        }
    };
    let (min, max) = (port(req.port_range_min)?, port(req.port_range_max)?);
    match number {
        None if min.is_some() || max.is_some() => {
            return Err(rule_error(
                "SecurityGroupProtocolRequiredWithPorts",
                "Must also specify protocol if port range is given.",
            ))
        }
        None => {}
        Some(n) if PORT_PROTOCOLS.contains(&n) => {
            if min == Some(0) || max == Some(0) {
                return Err(rule_error(
                    "SecurityGroupInvalidPortValue",
                    "Invalid value for port 0",
                ));
            }
            let ok = matches!((min, max), (Some(a), Some(b)) if a <= b)
                || (min.is_none() && max.is_none());
            if !ok {
                return Err(rule_error(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                ));
            }
        }
        Some(n) if ICMP_PROTOCOLS.contains(&n) => {
            for (value, field, attr) in [(min, "type", "port_range_min"), (max, "code", "port_range_max")] {
                if let Some(v) = value.filter(|v| *v > 255) {
                    return Err(rule_error(
                        "SecurityGroupInvalidIcmpValue",
                        format!("Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."),
                    ));
                }
            }
            if min.is_none() {
                if let Some(code) = max {
                    return Err(rule_error(
                        "SecurityGroupMissingIcmpType",
                        format!("ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."),
                    ));
                }
            }
        }
        Some(_) if min.is_some() || max.is_some() => {
            return Err(rule_error(
                "SecurityGroupInvalidProtocolForPort",
                format!(
                    "Invalid protocol {} for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP protocols.",
                    protocol.as_deref().unwrap_or_default()
                ),
            ))
        }
        Some(_) => {}
    }
    if ethertype == "IPv4" && number.is_some_and(|n| IPV6_ONLY_PROTOCOLS.contains(&n)) {
        return Err(rule_error(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!(
                "Invalid ethertype {ethertype} for protocol {}.",
                protocol.as_deref().unwrap_or_default()
            ),
        ));
    }
    let remote_group_id = req.remote_group_id.clone().filter(|g| !g.is_empty());
    let remote_ip_prefix = match req.remote_ip_prefix.as_deref() {
        None | Some("") => None,
        Some(p) => {
            if remote_group_id.is_some() {
                return Err(rule_error(
                    "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                    "Only remote_ip_prefix or remote_group_id may be provided.",
                ));
            }
            let Ok(cidr) = Cidr::parse_loose(p) else {
                return Err(rule_error(
                    "InvalidCIDR",
                    format!("Invalid CIDR {p} given as IP prefix."),
                ));
            };
            if cidr.v6 != (ethertype == "IPv6") {
                return Err(rule_error(
                    "SecurityGroupRuleParameterConflict",
                    format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
                ));
            }
            Some(cidr.to_string())
        }
    };
    Ok(Rule {
        id: id.to_string(),
        direction: req.direction.clone(),
        ethertype,
        protocol,
        port_range_min: min,
        port_range_max: max,
        remote_ip_prefix,
        remote_group_id,
        description: req.description.clone(),
    })
}

/// The rules a new group starts with: egress anywhere over IPv4 and IPv6, and for a project's `default`
/// group also ingress from members of the same group. `ids` supplies the rule ids (two or four).
pub fn initial_rules(group_id: &str, is_default: bool, ids: &[String]) -> Vec<Rule> {
    let mut kinds = vec![("egress", "IPv4", false), ("egress", "IPv6", false)];
    if is_default {
        kinds.push(("ingress", "IPv4", true));
        kinds.push(("ingress", "IPv6", true));
    }
    kinds
        .into_iter()
        .zip(ids)
        .map(|((direction, ethertype, from_group), id)| Rule {
            id: id.clone(),
            direction: direction.into(),
            ethertype: ethertype.into(),
            remote_group_id: from_group.then(|| group_id.to_string()),
            ..Default::default()
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
    /// The project's `default` group.
    pub is_default: bool,
    pub tags: Vec<String>,
    /// Rule id -> rule.
    pub rules: BTreeMap<String, Rule>,
    /// The stream's version: Neutron's revision_number (rules added or removed count too).
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecurityGroupCommand {
    /// Record a new group with its initial rules. For a project's default group (whose id is derived from
    /// the project), creating it again while it exists records nothing.
    Create {
        project_id: String,
        name: String,
        description: String,
        stateful: bool,
        is_default: bool,
        rules: Vec<Rule>,
        tags: Vec<String>,
    },
    /// Only the fields given change. `in_use` says whether ports use the group (stateful cannot change then).
    Update {
        name: Option<String>,
        description: Option<String>,
        stateful: Option<bool>,
        in_use: bool,
        if_revision: Option<u64>,
    },
    /// Add a checked rule (see [`check_rule`]); a duplicate of an existing rule is refused.
    AddRule(Rule),
    RemoveRule {
        rule_id: String,
    },
    SetTags(Vec<String>),
    Delete,
}

impl SecurityGroup {
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    /// The rule that `rule` would duplicate, if any.
    pub fn duplicate_of(&self, rule: &Rule) -> Option<&Rule> {
        let key = rule.key();
        self.rules.values().find(|r| r.key() == key)
    }
}

impl Aggregate for SecurityGroup {
    type Command = SecurityGroupCommand;
    type Event = E;
    const KIND: &'static str = "security-group";

    fn decide(&self, cmd: &SecurityGroupCommand) -> Result<Vec<E>, DomainError> {
        use SecurityGroupCommand as C;
        if let C::Create {
            project_id,
            name,
            description,
            stateful,
            is_default,
            rules,
            tags,
        } = cmd
        {
            if self.is_live() {
                if *is_default && self.is_default {
                    return Ok(vec![]);
                }
                return Err(DomainError::AlreadyExists {
                    kind: "security group",
                    detail: "id already used".into(),
                });
            }
            // Only a project's default group comes back after a delete (its id is derived, not drawn).
            if self.exists && !*is_default {
                return Err(DomainError::AlreadyExists {
                    kind: "security group",
                    detail: "id already used".into(),
                });
            }
            return Ok(vec![E::SecurityGroupCreated(pb::SecurityGroupCreated {
                project_id: project_id.clone(),
                name: name.clone(),
                description: description.clone(),
                stateful: *stateful,
                is_default: *is_default,
                rules: rules.iter().map(Rule::to_pb).collect(),
                tags: tags.clone(),
            })]);
        }
        if !self.is_live() {
            return Err(DomainError::NotFound {
                kind: "security group",
                id: String::new(),
            });
        }
        Ok(match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::Update {
                name,
                description,
                stateful,
                in_use,
                if_revision,
            } => {
                if let Some(w) = if_revision.filter(|w| *w != self.revision) {
                    return Err(revision_mismatch(self.revision, w));
                }
                if let Some(n) = name {
                    if self.is_default && n != DEFAULT_GROUP_NAME {
                        return Err(DomainError::Conflict(
                            "SecurityGroupCannotUpdateDefault: Updating default security group not allowed.".into(),
                        ));
                    }
                    if !self.is_default && n.eq_ignore_ascii_case(DEFAULT_GROUP_NAME) {
                        return Err(DomainError::Conflict(
                            "SecurityGroupDefaultAlreadyExists: Default security group already exists.".into(),
                        ));
                    }
                }
                if stateful.is_some_and(|s| s != self.stateful) && *in_use {
                    return Err(DomainError::Conflict(
                        "SecurityGroupInUse: Security Group cannot change its stateful attribute while in use.".into(),
                    ));
                }
                let changed = |new: &Option<String>, old: &str| new.clone().filter(|n| n != old);
                let ev = pb::SecurityGroupUpdated {
                    name: changed(name, &self.name),
                    description: changed(description, &self.description),
                    stateful: stateful.filter(|s| *s != self.stateful),
                };
                if ev == pb::SecurityGroupUpdated::default() {
                    vec![]
                } else {
                    vec![E::SecurityGroupUpdated(ev)]
                }
            }
            C::AddRule(rule) => {
                if let Some(existing) = self.duplicate_of(rule) {
                    return Err(DomainError::Conflict(format!(
                        "SecurityGroupRuleExists: Security group rule already exists. Rule id is {}.",
                        existing.id
                    )));
                }
                if self.rules.contains_key(&rule.id) {
                    return Err(DomainError::AlreadyExists {
                        kind: "security group rule",
                        detail: "id already used".into(),
                    });
                }
                vec![E::SecurityGroupRuleAdded(pb::SecurityGroupRuleAdded {
                    rule: Some(rule.to_pb()),
                })]
            }
            C::RemoveRule { rule_id } => {
                if !self.rules.contains_key(rule_id) {
                    return Err(DomainError::NotFound {
                        kind: "security group rule",
                        id: rule_id.clone(),
                    });
                }
                vec![E::SecurityGroupRuleRemoved(pb::SecurityGroupRuleRemoved {
                    rule_id: rule_id.clone(),
                })]
            }
            C::SetTags(tags) => {
                if *tags == self.tags {
                    vec![]
                } else {
                    vec![E::TagsSet(pb::TagsSet { tags: tags.clone() })]
                }
            }
            C::Delete => vec![E::SecurityGroupDeleted(pb::SecurityGroupDeleted {})],
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::SecurityGroupCreated(c) => {
                self = SecurityGroup {
                    revision: self.revision,
                    exists: true,
                    deleted: false,
                    project_id: c.project_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    stateful: c.stateful,
                    is_default: c.is_default,
                    tags: c.tags.clone(),
                    rules: c
                        .rules
                        .iter()
                        .map(|r| (r.rule_id.clone(), Rule::from_pb(r)))
                        .collect(),
                };
            }
            E::SecurityGroupUpdated(u) => {
                if let Some(n) = &u.name {
                    self.name = n.clone();
                }
                if let Some(d) = &u.description {
                    self.description = d.clone();
                }
                if let Some(s) = u.stateful {
                    self.stateful = s;
                }
            }
            E::SecurityGroupRuleAdded(a) => {
                if let Some(r) = &a.rule {
                    self.rules.insert(r.rule_id.clone(), Rule::from_pb(r));
                }
            }
            E::SecurityGroupRuleRemoved(r) => {
                self.rules.remove(&r.rule_id);
            }
            E::TagsSet(t) => self.tags = t.tags.clone(),
            E::SecurityGroupDeleted(_) => {
                self.deleted = true;
                self.rules.clear();
            }
            _ => return self,
        }
        self.revision += 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    const G: &str = "11111111-1111-4111-8111-111111111111";

    fn req(direction: &str) -> RuleRequest {
        RuleRequest {
            direction: direction.into(),
            ..Default::default()
        }
    }

    fn created(is_default: bool) -> E {
        let ids: Vec<String> = (1..=4).map(|i| format!("r{i}")).collect();
        E::SecurityGroupCreated(pb::SecurityGroupCreated {
            project_id: "p1".into(),
            name: if is_default {
                "default".into()
            } else {
                "web".into()
            },
            description: String::new(),
            stateful: true,
            is_default,
            rules: initial_rules(G, is_default, &ids)
                .iter()
                .map(Rule::to_pb)
                .collect(),
            tags: vec![],
        })
    }

    fn kind_of(r: Result<Rule, RuleError>) -> &'static str {
        r.expect_err("refused").kind
    }

    #[test]
    fn initial_rules_are_neutrons_defaults() {
        let ids: Vec<String> = (1..=4).map(|i| format!("r{i}")).collect();
        let plain = initial_rules(G, false, &ids);
        assert_eq!(plain.len(), 2);
        assert!(plain.iter().all(|r| r.direction == "egress"
            && r.protocol.is_none()
            && r.remote_ip_prefix.is_none()
            && r.remote_group_id.is_none()));
        let default = initial_rules(G, true, &ids);
        assert_eq!(default.len(), 4);
        let ingress: Vec<&Rule> = default
            .iter()
            .filter(|r| r.direction == "ingress")
            .collect();
        assert_eq!(ingress.len(), 2);
        assert!(ingress
            .iter()
            .all(|r| r.remote_group_id.as_deref() == Some(G)));
        assert_eq!(
            ingress
                .iter()
                .map(|r| r.ethertype.as_str())
                .collect::<Vec<_>>(),
            ["IPv4", "IPv6"]
        );
    }

    #[test]
    fn rules_are_checked_like_neutron() {
        let tcp = |min, max| RuleRequest {
            protocol: Some("tcp".into()),
            port_range_min: min,
            port_range_max: max,
            ..req("ingress")
        };
        let ok = check_rule("x", &tcp(Some(22), Some(22))).unwrap();
        assert_eq!((ok.port_range_min, ok.port_range_max), (Some(22), Some(22)));
        assert_eq!(ok.ethertype, "IPv4");
        assert_eq!(
            kind_of(check_rule("x", &tcp(Some(30), Some(20)))),
            "SecurityGroupInvalidPortRange"
        );
        assert_eq!(
            kind_of(check_rule("x", &tcp(Some(22), None))),
            "SecurityGroupInvalidPortRange"
        );
        assert_eq!(
            kind_of(check_rule("x", &tcp(Some(0), Some(5)))),
            "SecurityGroupInvalidPortValue"
        );
        assert_eq!(
            kind_of(check_rule("x", &tcp(Some(1), Some(70000)))),
            "SecurityGroupInvalidPortValue"
        );
        assert_eq!(
            kind_of(check_rule(
                "x",
                &RuleRequest {
                    port_range_min: Some(1),
                    port_range_max: Some(2),
                    ..req("ingress")
                }
            )),
            "SecurityGroupProtocolRequiredWithPorts"
        );
        assert_eq!(
            kind_of(check_rule(
                "x",
                &RuleRequest {
                    protocol: Some("gre".into()),
                    port_range_min: Some(1),
                    port_range_max: Some(2),
                    ..req("ingress")
                }
            )),
            "SecurityGroupInvalidProtocolForPort"
        );
        assert_eq!(
            kind_of(check_rule(
                "x",
                &RuleRequest {
                    protocol: Some("foo".into()),
                    ..req("ingress")
                }
            )),
            "SecurityGroupRuleInvalidProtocol"
        );
        assert_eq!(
            kind_of(check_rule(
                "x",
                &RuleRequest {
                    protocol: Some("256".into()),
                    ..req("ingress")
                }
            )),
            "SecurityGroupRuleInvalidProtocol"
        );
        assert!(check_rule(
            "x",
            &RuleRequest {
                protocol: Some("47".into()),
                ..req("ingress")
            }
        )
        .is_ok());
        assert_eq!(kind_of(check_rule("x", &req("sideways"))), "HTTPBadRequest");
        let icmp = |min, max| RuleRequest {
            protocol: Some("icmp".into()),
            port_range_min: min,
            port_range_max: max,
            ..req("ingress")
        };
        assert!(check_rule("x", &icmp(Some(8), Some(0))).is_ok());
        assert!(check_rule("x", &icmp(Some(8), None)).is_ok());
        assert_eq!(
            kind_of(check_rule("x", &icmp(None, Some(0)))),
            "SecurityGroupMissingIcmpType"
        );
        assert_eq!(
            kind_of(check_rule("x", &icmp(Some(300), None))),
            "SecurityGroupInvalidIcmpValue"
        );
        assert_eq!(
            kind_of(check_rule(
                "x",
                &RuleRequest {
                    protocol: Some("ipv6-icmp".into()),
                    ..req("ingress")
                }
            )),
            "SecurityGroupEthertypeConflictWithProtocol"
        );
    }

    #[test]
    fn remote_prefixes_are_canonical_and_match_the_ethertype() {
        let with = |prefix: &str, ethertype: Option<&str>| RuleRequest {
            remote_ip_prefix: Some(prefix.into()),
            ethertype: ethertype.map(str::to_string),
            ..req("ingress")
        };
        let r = check_rule("x", &with("10.1.2.3/16", None)).unwrap();
        assert_eq!(r.remote_ip_prefix.as_deref(), Some("10.1.0.0/16"));
        let r = check_rule("x", &with("2001:db8::1", Some("ipv6"))).unwrap();
        assert_eq!(
            (r.remote_ip_prefix.as_deref(), r.ethertype.as_str()),
            (Some("2001:db8::1/128"), "IPv6")
        );
        assert_eq!(
            kind_of(check_rule("x", &with("::/0", None))),
            "SecurityGroupRuleParameterConflict"
        );
        assert_eq!(
            kind_of(check_rule("x", &with("10.0.0.0/8", Some("IPv6")))),
            "SecurityGroupRuleParameterConflict"
        );
        assert_eq!(
            kind_of(check_rule("x", &with("10.0.0.0/33", None))),
            "InvalidCIDR"
        );
        assert_eq!(kind_of(check_rule("x", &with("nope", None))), "InvalidCIDR");
        let both = RuleRequest {
            remote_group_id: Some(G.into()),
            ..with("10.0.0.0/8", None)
        };
        assert_eq!(
            kind_of(check_rule("x", &both)),
            "SecurityGroupRemoteGroupAndRemoteIpPrefix"
        );
    }

    #[test]
    fn a_duplicate_rule_is_refused_naming_the_existing_one() {
        let ssh = |id: &str, protocol: &str, prefix: Option<&str>| {
            check_rule(
                id,
                &RuleRequest {
                    protocol: Some(protocol.into()),
                    port_range_min: Some(22),
                    port_range_max: Some(22),
                    remote_ip_prefix: prefix.map(str::to_string),
                    description: format!("rule {id}"),
                    ..req("ingress")
                },
            )
            .unwrap()
        };
        let state = given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::AddRule(ssh(
                "a",
                "tcp",
                Some("0.0.0.0/0"),
            )))
            .then_ok();
        assert_eq!(state.rules.len(), 3);
        // Same protocol by number, "anywhere" spelled as no prefix, another description: the same rule.
        let err = state
            .decide(&SecurityGroupCommand::AddRule(ssh("b", "6", None)))
            .unwrap_err();
        assert_eq!(
            err,
            DomainError::Conflict(
                "SecurityGroupRuleExists: Security group rule already exists. Rule id is a.".into()
            )
        );
        // The default egress rule, asked for again.
        let egress = check_rule("c", &req("egress")).unwrap();
        given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::AddRule(egress))
            .then_conflict();
        // A different prefix is a different rule.
        given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::AddRule(ssh(
                "d",
                "tcp",
                Some("10.0.0.0/8"),
            )))
            .then_ok();
    }

    #[test]
    fn rules_are_removed_and_unknown_ones_are_not_found() {
        let state = given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::RemoveRule {
                rule_id: "r1".into(),
            })
            .then(vec![E::SecurityGroupRuleRemoved(
                pb::SecurityGroupRuleRemoved {
                    rule_id: "r1".into(),
                },
            )]);
        assert_eq!(state.rules.keys().collect::<Vec<_>>(), ["r2"]);
        given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::RemoveRule {
                rule_id: "zz".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn the_default_group_keeps_its_name_and_others_cannot_take_it() {
        let rename = |name: &str| SecurityGroupCommand::Update {
            name: Some(name.into()),
            description: None,
            stateful: None,
            in_use: false,
            if_revision: None,
        };
        given::<SecurityGroup>([created(true)])
            .when(rename("other"))
            .then_conflict();
        given::<SecurityGroup>([created(true)])
            .when(rename("default"))
            .then_nothing();
        given::<SecurityGroup>([created(false)])
            .when(rename("Default"))
            .then_conflict();
        let s = given::<SecurityGroup>([created(false)])
            .when(rename("db"))
            .then_ok();
        assert_eq!(s.name, "db");
    }

    #[test]
    fn stateful_cannot_change_while_ports_use_the_group() {
        let set = |in_use| SecurityGroupCommand::Update {
            name: None,
            description: Some("d".into()),
            stateful: Some(false),
            in_use,
            if_revision: None,
        };
        given::<SecurityGroup>([created(false)])
            .when(set(true))
            .then_conflict();
        let s = given::<SecurityGroup>([created(false)])
            .when(set(false))
            .then_ok();
        assert!(!s.stateful);
        assert_eq!(s.description, "d");
    }

    #[test]
    fn the_default_group_is_created_once_and_may_come_back_after_a_delete() {
        let create = |is_default| SecurityGroupCommand::Create {
            project_id: "p1".into(),
            name: "default".into(),
            description: "Default security group".into(),
            stateful: true,
            is_default,
            rules: initial_rules(G, true, &["a".into(), "b".into(), "c".into(), "d".into()]),
            tags: vec![],
        };
        given::<SecurityGroup>([created(true)])
            .when(create(true))
            .then_nothing();
        given::<SecurityGroup>([created(false)])
            .when(create(false))
            .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
        let deleted = E::SecurityGroupDeleted(pb::SecurityGroupDeleted {});
        let s = given::<SecurityGroup>([created(true), deleted.clone()])
            .when(create(true))
            .then_ok();
        assert!(s.is_live() && s.rules.len() == 4);
        given::<SecurityGroup>([created(false), deleted])
            .when(create(false))
            .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
    }

    #[test]
    fn a_deleted_group_refuses_everything() {
        let s = given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::Delete)
            .then_ok();
        assert!(!s.is_live() && s.rules.is_empty());
        given::<SecurityGroup>([
            created(false),
            E::SecurityGroupDeleted(pb::SecurityGroupDeleted {}),
        ])
        .when(SecurityGroupCommand::SetTags(vec!["a".into()]))
        .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn tags_replace_the_list() {
        let s = given::<SecurityGroup>([created(false)])
            .when(SecurityGroupCommand::SetTags(vec!["a".into(), "b".into()]))
            .then_ok();
        assert_eq!(s.tags, ["a", "b"]);
        given::<SecurityGroup>([
            created(false),
            E::TagsSet(pb::TagsSet {
                tags: vec!["a".into()],
            }),
        ])
        .when(SecurityGroupCommand::SetTags(vec!["a".into()]))
        .then_nothing();
    }
}
