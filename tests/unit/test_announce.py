"""Announcing a VIP over BGP through BIRD: the directives, the decision (sans-IO), the fragment BIRD reads,
`sheer net plan`'s items, and the master's announcer over real shared boards with a fake device."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_net_plan import conf

from sheer.config import Config, ConfigError
from sheer.core import announce
from sheer.core.health import Health
from sheer.doctor.checks.announce import announce as check_announce
from sheer.doctor.needs import needs
from sheer.doctor.state import BgpProtocol, BirdState, State
from sheer.io.logs import ErrorLogger
from sheer.lab import configs
from sheer.net.facts import IfAddr, KernelFacts, RouteFact, RuleFact
from sheer.net.fastpath import NftFastPath
from sheer.net.items import Address, BirdFragment, Link, from_json, to_json
from sheer.net.plan import Options, plan
from sheer.runtime.announce import Announcer
from sheer.runtime.board import HealthBoard
from sheer.runtime.shared import FALSE, TRUE, SharedBoard

VIP = "192.168.100.10"
ANNOUNCE = f"announce {VIP};\nannounce_bird_socket run/bird.ctl;\nannounce_bird_fragment /etc/bird/x.conf;\n"
FLEET = ANNOUNCE + configs.fleet("/tmp").replace("daemon on;\n", "")

# a fleet proxy as `sheer net` sees it: the fabric towards the ECMP router (default route), the
# upstreams' network, the VIP already on sheer's dummy interface
PROXY1 = KernelFacts(
    addresses=(IfAddr("lo", "127.0.0.1/8"), IfAddr("sheer-fab", "192.168.98.11/24"),
               IfAddr("sheer-int", "172.16.0.31/24"), IfAddr("sheer-vip", f"{VIP}/32")),
    routes=(RouteFact("0.0.0.0/0", "sheer-fab", "192.168.98.1"), RouteFact("192.168.98.0/24", "sheer-fab"),
            RouteFact("172.16.0.0/24", "sheer-int")),
    rules=(RuleFact(0, 255), RuleFact(32766, 254), RuleFact(32767, 253)),
    sysctls={"net.ipv4.ip_forward": "1"},
    mtus={"sheer-fab": 1500, "sheer-int": 1500, "sheer-vip": 1500},
)


def err(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        conf(tmp_path, text)
    return str(info.value)


def test_the_directives(tmp_path: Path) -> None:
    config = conf(tmp_path, FLEET)
    assert [v.address for v in config.announce.vips] == [VIP]
    assert config.announce.bird_socket == str(tmp_path / "run/bird.ctl")    # relative: the prefix
    assert config.announce.bird_fragment == "/etc/bird/x.conf"
    assert config.announce.withdraw_delay == 1.0
    plain = conf(tmp_path, configs.fleet("/tmp"))
    assert not plain.announce and plain.announce.bird_socket == "/run/bird/bird.ctl"
    delayed = conf(tmp_path, "announce_withdraw_delay 250ms;\n" + FLEET)
    assert delayed.announce.withdraw_delay == 0.25


@pytest.mark.parametrize(("line", "message"), [
    ("announce www.example.com;", '"announce" takes an IPv4 address, got "www.example.com"'),
    ("announce 2001:db8::1;", "only IPv4 addresses are announced yet"),
    ("announce 0.0.0.0;", "cannot be the wildcard address"),
    ("announce 127.0.0.1;", "cannot be a loopback address"),
    (f"announce {VIP};", f'duplicate "announce {VIP}"'),
    ("announce 192.0.2.1 192.0.2.2;", 'invalid number of arguments in "announce" directive'),
])
def test_bad_announce_lines_name_their_line(tmp_path: Path, line: str, message: str) -> None:
    text = err(tmp_path, f"{line}\n{FLEET}")
    at = 2 if message.startswith("duplicate") else 1      # the second one is the duplicate
    assert message in text and f"lb.conf:{at}:" in text


def test_a_vip_nobody_listens_on_is_refused(tmp_path: Path) -> None:
    specific = FLEET.replace("listen 53 udp;", "listen 192.0.2.7:53 udp;")
    assert "no server listens on it" in err(tmp_path, specific)
    assert conf(tmp_path, FLEET.replace("listen 53 udp;", f"listen {VIP}:53 udp;")).announce
    inside = configs.fleet("/tmp").replace("stream {", f"stream {{\n    announce {VIP};")
    assert '"announce" directive is not allowed here' in err(tmp_path, inside)


def test_vips_collect_the_upstreams_of_every_server_on_them(tmp_path: Path) -> None:
    text = FLEET.replace("stream {", """http {
    upstream web { server 172.16.0.11:80; }
    upstream other { server 172.16.0.12:80; }
    server { listen 80; location / { proxy_pass http://web; } }
    server { listen 127.0.0.1:8080; location / { proxy_pass http://other; } }
}
stream {""")
    (vip,) = announce.vips(conf(tmp_path, text))
    assert vip.device == "sheer-ac0a8640a" and len(vip.device) == 15
    assert [u.name for u in vip.upstreams] == ["dns_upstreams", "web"]
    assert vip.listens == ("0.0.0.0:53 udp", "0.0.0.0:80")


def test_decide(tmp_path: Path) -> None:
    (vip,) = announce.vips(conf(tmp_path, FLEET))
    assert announce.decide(vip, lambda u: 4, serving=True).announce
    down = announce.decide(vip, lambda u: 0, serving=True)
    assert not down.announce and 'upstream "dns_upstreams" has no usable server' in down.reason
    assert announce.decide(vip, lambda u: 4, serving=False).reason == "no worker serves its listeners"
    assert announce.decide(vip, lambda u: 4, serving=True, stopping="stopping") == \
        announce.Decision(False, "stopping")


def test_the_fragment(tmp_path: Path) -> None:
    text = announce.fragment(conf(tmp_path, FLEET), "sheer net apply -c lb.conf")
    route = f'    route {VIP}/32 via "sheer-ac0a8640a";\n'
    assert f"protocol static sheer_announce {{\n    ipv4;\n{route}}}\n" in text
    assert all(line.startswith("#") for line in text.splitlines()[:4])


def test_the_plan_owns_the_vip_the_dummy_and_birds_fragment(tmp_path: Path) -> None:
    p = plan(conf(tmp_path, FLEET), Options(dsr="origin"), PROXY1)
    assert not p.problems, p.problems
    link, address, fragment = (i for i in p.items if isinstance(i, (Link, Address, BirdFragment)))
    assert link == Link("sheer-vip") and address == Address("sheer-vip", f"{VIP}/32")
    assert isinstance(fragment, BirdFragment) and fragment.path == "/etc/bird/x.conf"
    assert fragment.socket == str(tmp_path / "run/bird.ctl") and "sheer-ac0a8640a" in fragment.text
    assert p.commands()[:3] == ["ip link add sheer-vip type dummy", "ip link set sheer-vip up",
                                f"ip addr add {VIP}/32 dev sheer-vip"]
    # the fast path hooks where the VIP's traffic comes in (the fabric), for the announced VIP
    fast = next(i for i in p.items if isinstance(i, NftFastPath))
    assert fast.dev == "sheer-fab" and fast.services[0].vip == VIP
    for item in (link, address, fragment):
        assert from_json(to_json(item)) == item


def test_without_dummy_interfaces_the_vip_goes_on_lo(tmp_path: Path) -> None:
    facts = replace(PROXY1, dummy=False, addresses=PROXY1.addresses[:3])
    p = plan(conf(tmp_path, FLEET), Options(dsr="origin"), facts)
    assert not any(isinstance(i, Link) for i in p.items)
    assert Address("lo", f"{VIP}/32") in p.items
    assert any("no dummy interfaces" in n for n in p.notes)
    elsewhere = replace(facts, addresses=(*facts.addresses, IfAddr("eth9", f"{VIP}/32")))
    p = plan(conf(tmp_path, FLEET), Options(dsr="origin"), elsewhere)
    assert not any(isinstance(i, Address) for i in p.items)
    assert any(f"{VIP} is already an address of eth9" in n for n in p.notes)


def test_an_upstream_answers_as_the_announced_vip(tmp_path: Path) -> None:
    up = KernelFacts(addresses=(IfAddr("sheer-int", "172.16.0.11/24"),),
                     routes=(RouteFact("172.16.0.0/24", "sheer-int"),))
    p = plan(conf(tmp_path, FLEET), Options("upstream", "172.16.0.11", "origin", via="172.16.0.254"), up)
    assert f"ip saddr set {VIP}" in p.nft()
    assert not any(isinstance(i, (Link, Address, BirdFragment)) for i in p.items)


class FakeDevice:
    def __init__(self) -> None:
        self.up: list[bool] = []

    def set_up(self, up: bool) -> None:
        self.up.append(up)


def announcer(config: Config) -> tuple[Announcer, FakeDevice]:
    found = Announcer(ErrorLogger(replace(config.error_log, path="stderr", level="emerg")))
    device = FakeDevice()
    found.vips = announce.vips(config)
    found.devices = {VIP: device}       # type: ignore[dict-item]
    found.announced = {VIP: None}
    return found, device


def test_an_instance_not_announcing_yet_waits_for_a_settled_view(tmp_path: Path) -> None:
    vip = announce.vips(conf(tmp_path, FLEET))[0]
    waiting = announce.decide(vip, lambda u: 1, True, settling="3 server(s) not checked yet")
    assert waiting == announce.Decision(False, "3 server(s) not checked yet")
    no_server = announce.decide(vip, lambda u: 0, True, settling="x")
    assert no_server.reason.endswith("has no usable server (all unhealthy, down or draining)")
    assert announce.decide(vip, lambda u: 1, True, settling=None).announce


def test_the_announcer_follows_health_and_the_api(tmp_path: Path) -> None:
    config = conf(tmp_path, FLEET)
    shared, health = SharedBoard(config), HealthBoard(config)
    ann, device = announcer(config)

    def update(serving: bool = True, stopping: str | None = None) -> None:
        ann.update(config, health, shared, None, serving, stopping)

    update()
    assert device.up == [False]                        # `mandatory`: checking, nothing passed yet
    group = health.groups[0]
    health.set(group, 2, Health.UP)
    update()
    assert device.up == [False]                        # one check passed, three not answered yet
    for index in (0, 1, 3):
        health.set(group, index, Health.DOWN)
    shared.kernel_pending = True                       # the checker has not written the kernel's table
    update()
    assert device.up == [False]
    shared.kernel_pending = False
    update()
    assert device.up == [False, True]                  # the first round complete, the kernel fed
    shared.kernel_pending = True                       # a later change being written: kept
    update()
    assert device.up == [False, True]
    shared.kernel_pending = False
    for index in range(4):
        health.set(group, index, Health.CHECKING)      # a reload's checks start over: kept
    update()
    assert device.up == [False, True]
    for index in (0, 1, 3):
        health.set(group, index, Health.DOWN)
    update()
    assert device.up == [False, True]
    health.set(group, 2, Health.UP)
    refs = shared.layout.peers(config.stream.servers[0].upstream)  # type: ignore[union-attr, arg-type]
    with shared.changing():
        shared.set_override(refs[2].control, drain=TRUE)     # the API drains the one healthy peer
    update()
    assert device.up == [False, True, False]
    with shared.changing():
        shared.set_override(refs[2].control, drain=FALSE)
    update()
    update(stopping="stopping")
    assert device.up == [False, True, False, True, False]
    update(serving=False)
    assert device.up[-1] is False and len(device.up) == 5


# --- sheer doctor ---------------------------------------------------------------------------------------

SHOW_PROTOCOLS = """Name       Proto      Table      State  Since         Info
device1    Device     ---        up     05:07:29.105
sheer_announce Static master4    up     05:07:29.105
edge       BGP        ---        up     05:07:33.577  Established
backup     BGP        ---        start  2026-12-07 05:07:29  Active        Socket: Connection refused
"""


def test_birdc_show_protocols_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from sheer.net import announce as net_announce
    monkeypatch.setattr(net_announce, "birdc", lambda socket, *args: (True, SHOW_PROTOCOLS))
    found, _ = net_announce.protocols("/run/bird/bird.ctl")
    assert found is not None
    assert [(p.name, p.proto, p.state, p.info) for p in found] == [
        ("device1", "Device", "up", ""), ("sheer_announce", "Static", "up", ""),
        ("edge", "BGP", "up", "Established"), ("backup", "BGP", "start", "Active")]
    monkeypatch.setattr(net_announce, "birdc", lambda socket, *args: (False, "Unable to connect"))
    assert net_announce.protocols("/x") == (None, "Unable to connect")


def test_birdc_show_route_export_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from sheer.net import announce as net_announce
    shown = ("Table master4:\n192.168.100.10/32    unicast [sheer_announce 05:29:29.548] * (200)\n"
             "\tdev sheer-ac0a8640a")
    monkeypatch.setattr(net_announce, "birdc", lambda socket, *args: (True, shown))
    assert net_announce.exported("/s", "edge", "192.168.100.10/32")[0] is True
    assert net_announce.exported("/s", "edge", "192.168.100.1/32")[0] is False
    monkeypatch.setattr(net_announce, "birdc", lambda socket, *args: (True, "Network not found"))
    assert net_announce.exported("/s", "edge", "192.168.100.10/32")[0] is False
    monkeypatch.setattr(net_announce, "birdc", lambda socket, *args: (False, "Unable to connect"))
    assert net_announce.exported("/s", "edge", "192.168.100.10/32")[0] is None


def doctor(tmp_path: Path, **bird: object) -> list[tuple[str, str]]:
    config = conf(tmp_path, FLEET)
    n = needs(config, Options(dsr="origin"), PROXY1, str(tmp_path / "lb.conf"))
    fragment = next(i for i in n.plan.items if isinstance(i, BirdFragment))
    settings: dict[str, object] = {
        "protocols": (BgpProtocol("sheer_announce", "Static", "up", ""),
                      BgpProtocol("edge", "BGP", "up", "Established")),
        "fragment": fragment.text, "devices": {VIP: "up"}, "exported": {(VIP, "edge"): True}}
    settings.update(bird)
    s = State(PROXY1, bird=BirdState(fragment.socket, **settings))  # type: ignore[arg-type]
    return [(f.status, f.summary) for f in check_announce(n, s)]


def test_doctor_all_well(tmp_path: Path) -> None:
    found = doctor(tmp_path)
    assert all(status == "ok" for status, _ in found), found
    assert ("ok", "BGP session edge is established") in found
    assert ("ok", f"{VIP} is announced (sheer-ac0a8640a up), exported to edge") in found


def test_doctor_says_what_is_wrong(tmp_path: Path) -> None:
    def problems(**bird: object) -> list[str]:
        return [summary for status, summary in doctor(tmp_path, **bird) if status != "ok"]

    assert problems(protocols=None, error="Unable to connect")[-1].startswith("BIRD does not answer on ")
    assert "BIRD has not read sheer's fragment (no protocol sheer_announce)" in problems(
        protocols=(BgpProtocol("edge", "BGP", "up", "Established"),))
    assert "BGP session edge is not established (start, Active): the router does not hear this instance" in \
        problems(protocols=(BgpProtocol("sheer_announce", "Static", "up", ""),
                            BgpProtocol("edge", "BGP", "start", "Active")))
    assert "BIRD has no BGP session: no router hears the VIPs" in problems(
        protocols=(BgpProtocol("sheer_announce", "Static", "up", ""),))
    assert problems(fragment=None) == ["BIRD's fragment /etc/bird/x.conf is missing"]
    assert problems(devices={VIP: "missing"})[0].startswith(f"{VIP} is not announced: no running sheer")
    assert problems(devices={VIP: "down"})[0].startswith(f"{VIP} is withdrawn")
    assert problems(protocols=(BgpProtocol("sheer_announce", "Static", "up", ""),
                               BgpProtocol("edge", "BGP", "start", "Connect")), exported={})[-1] == (
        f"{VIP} is announced by sheer (sheer-ac0a8640a up) but no BGP session is established to carry it")
    assert problems(exported={(VIP, "edge"): False})[0].startswith(
        f"{VIP} is announced by sheer but BIRD does not export it to edge")
