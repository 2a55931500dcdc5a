"""A small taxonomy of how incidents start and how systems fail.

Two write-ups of the same kind of failure often share few words ("a typo in the router
rule" and "a bad configuration push"), so similar incidents are also matched on the kind of
trigger (a change, a deployment, a power loss, a clock problem...) and the failure modes
(database, DNS, memory...) that their text names. Each concept is recognised by a handful
of words, matched at word starts (`config` finds `configuration`); words of four letters or
fewer match only whole (`ups` is not `upstream`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = ["CONCEPTS", "Concept", "find_concepts"]


@dataclass(frozen=True)
class Concept:
    name: str
    kind: Literal["trigger", "mode"]
    words: tuple[str, ...]
    # How much a shared concept says: broad ones (a change, the network) say less.
    weight: float = 1.0


CONCEPTS: tuple[Concept, ...] = (
    Concept(
        "configuration change",
        "trigger",
        (
            "config",
            "misconfig",
            "setting",
            "parameter",
            "typo",
            "rule",
            "yaml",
            "manifest",
            "policy",
            "template",
            "environment variable",
            "wrong value",
            "incorrect value",
            "option",
        ),
    ),
    Concept(
        "deployment",
        "trigger",
        (
            "deploy",
            "release",
            "rollout",
            "rolled out",
            "upgrade",
            "new version",
            "canary",
            "pipeline",
            "push",
            "pushed",
            "hotfix",
        ),
        weight=0.7,
    ),
    Concept("feature flag", "trigger", ("feature flag", "flag", "toggle", "experiment", "ramp")),
    Concept(
        "human error",
        "trigger",
        (
            "accident",
            "mistake",
            "mistaken",
            "human error",
            "operator error",
            "manually",
            "wrong command",
            "fat finger",
            "by hand",
            "inadvertent",
            "unintended",
        ),
    ),
    Concept(
        "maintenance or migration",
        "trigger",
        ("maintenance", "migration", "migrate", "cutover", "failover", "decommission"),
        weight=0.7,
    ),
    Concept(
        "traffic surge",
        "trigger",
        (
            "traffic spike",
            "spike",
            "surge",
            "peak",
            "black friday",
            "flash sale",
            "thundering herd",
            "load test",
            "campaign",
        ),
    ),
    Concept(
        "power or cooling",
        "trigger",
        (
            "power",
            "generator",
            "ups",
            "electric",
            "transformer",
            "lightning",
            "utility",
            "cooling",
            "overheat",
            "temperature",
            "storm",
            "weather",
        ),
    ),
    Concept(
        "hardware failure",
        "trigger",
        (
            "hardware",
            "disk failure",
            "failed disk",
            "ssd",
            "nic",
            "switch",
            "router",
            "ecc",
            "fiber",
            "fibre",
            "cable",
            "firmware",
            "faulty",
            "malfunction",
        ),
    ),
    Concept(
        "time and clocks",
        "trigger",
        (
            "leap second",
            "leap year",
            "clock",
            "ntp",
            "timezone",
            "time zone",
            "daylight saving",
            "dst",
            "calendar",
            "epoch",
            "february 29",
            "year 2038",
            "date",
        ),
    ),
    Concept(
        "expiry",
        "trigger",
        ("expire", "expiry", "expiration", "certificate", "cert", "tls", "ssl", "renew"),
    ),
    Concept(
        "third-party outage",
        "trigger",
        ("third party", "third-party", "vendor", "provider", "upstream", "supplier", "saas"),
        weight=0.7,
    ),
    Concept(
        "security event",
        "trigger",
        (
            "security",
            "vulnerab",
            "attack",
            "ddos",
            "malware",
            "malicious",
            "exploit",
            "cve",
            "breach",
            "supply chain",
            "compromise",
        ),
    ),
    Concept(
        "concurrency",
        "mode",
        (
            "race",
            "concurren",
            "lock",
            "locked",
            "locking",
            "deadlock",
            "conflict",
            "split brain",
            "split-brain",
            "duplicate",
            "collision",
            "partition",
            "consistency",
        ),
    ),
    Concept(
        "capacity exhaustion",
        "mode",
        (
            "capacity",
            "overload",
            "saturat",
            "exhaust",
            "out of",
            "limit",
            "quota",
            "throttl",
            "autoscal",
            "starvation",
            "backlog",
            "queue depth",
            "too many",
            "max_connections",
        ),
        weight=0.7,
    ),
    Concept(
        "database",
        "mode",
        (
            "database",
            "db",
            "sql",
            "mysql",
            "postgres",
            "schema",
            "replica",
            "replication",
            "query",
            "index",
            "table",
            "shard",
            "transaction",
            "rds",
            "connection pool",
        ),
    ),
    Concept(
        "dns",
        "mode",
        ("dns", "resolver", "resolution", "coredns", "kube-dns", "ndots", "nameserver"),
    ),
    Concept(
        "network",
        "mode",
        (
            "network",
            "packet",
            "bgp",
            "routing",
            "route",
            "connectivity",
            "conntrack",
            "load balancer",
            "firewall",
            "mtu",
            "vpc",
            "subnet",
            "ip address",
            "latency",
            "timeout",
            "backbone",
            "ingress",
            "proxy",
            "haproxy",
            "nginx",
            "envoy",
        ),
        weight=0.6,
    ),
    Concept(
        "memory",
        "mode",
        (
            "memory",
            "oom",
            "oomkill",
            "out-of-memory",
            "leak",
            "leaked",
            "leaking",
            "heap",
            "garbage collect",
        ),
    ),
    Concept("cpu", "mode", ("cpu", "throttling", "cpu limit", "busy loop", "hot loop")),
    Concept(
        "storage",
        "mode",
        ("disk", "storage", "volume", "out of space", "inode", "filesystem", "ebs", "s3", "backup"),
    ),
    Concept("cache", "mode", ("cache", "redis", "memcache", "cdn", "elasticache")),
    Concept("messaging", "mode", ("kafka", "queue", "rabbitmq", "broker", "pubsub", "consumer")),
    Concept(
        "authentication",
        "mode",
        (
            "auth",
            "authenticat",
            "authoris",
            "authoriz",
            "login",
            "logged out",
            "credential",
            "token",
            "iam",
            "permission",
            "oauth",
            "sso",
            "ldap",
            "session",
        ),
    ),
    Concept(
        "software bug",
        "mode",
        (
            "bug",
            "null pointer",
            "exception",
            "crash",
            "panic",
            "segfault",
            "overflow",
            "regression",
            "infinite loop",
        ),
        weight=0.7,
    ),
    Concept(
        "containers",
        "mode",
        (
            "kubernetes",
            "k8s",
            "pod",
            "kubelet",
            "container",
            "docker",
            "node",
            "cluster",
            "daemonset",
            "deployment controller",
        ),
        weight=0.6,
    ),
    Concept(
        "control plane",
        "mode",
        (
            "etcd",
            "api server",
            "apiserver",
            "control plane",
            "scheduler",
            "controller manager",
            "admission",
            "webhook",
            "consul",
            "zookeeper",
        ),
    ),
    Concept(
        "cloud provider",
        "mode",
        (
            "aws",
            "amazon",
            "ec2",
            "elb",
            "alb",
            "nlb",
            "eks",
            "ebs",
            "rds",
            "iam",
            "route 53",
            "cloudwatch",
            "gcp",
            "gke",
            "gce",
            "google cloud",
            "azure",
            "aks",
            "region",
            "availability zone",
        ),
        weight=0.7,
    ),
    Concept("scheduled jobs", "mode", ("cron", "cronjob", "batch job", "scheduled job")),
)


def _trie(words: list[str]) -> str:
    """A regex matching any of `words`, shaped as a trie so each letter is tried once."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(c) + build(node[c]) for c in sorted(node) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(root)


_CONCEPTS_OF: dict[str, set[str]] = {}
for _concept in CONCEPTS:
    for _w in _concept.words:
        _CONCEPTS_OF.setdefault(_w, set()).add(_concept.name)
# The lookahead is the trie's first letters: most positions fail on it at once.
_FIRST = "".join(sorted({w[0] for w in _CONCEPTS_OF}))
_PATTERN = re.compile(rf"(?<![a-z0-9])(?=[{re.escape(_FIRST)}])" + _trie(list(_CONCEPTS_OF)))


def _whole(text: str, end: int) -> bool:
    """Whether a short word ending at `end` stands alone (a plural `s` allowed)."""
    if end < len(text) and text[end] == "s":
        end += 1
    return end >= len(text) or not (text[end].isascii() and text[end].isalnum())


@lru_cache(maxsize=20_000)
def find_concepts(text: str) -> frozenset[str]:
    """The names of the concepts `text` mentions."""
    lowered = text.lower()
    found: set[str] = set()
    for match in _PATTERN.finditer(lowered):
        word = match.group(0)
        # Short words stand alone (`ups` is not `upstream`); longer ones are word starts.
        if len(word) > 4 or _whole(lowered, match.end()):
            found |= _CONCEPTS_OF[word]
    return frozenset(found)
