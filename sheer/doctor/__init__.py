"""`sheer doctor`: the article's troubleshooting list, automated. What the configuration needs here
(`needs.needs`), what the kernel holds (`gather.gather`: reads only, probes only the config's upstreams
and gateways), the checks over both (`diagnose`), and the findings they report. `capture` and `pcap` follow
one flow hop by hop for `sheer trace`. It reads sheer.net's plan and kernel facts (net never imports it)
and writes nothing."""

from sheer.doctor.checks import diagnose
from sheer.doctor.findings import Cause, Finding, exit_status, group
from sheer.doctor.needs import Needs
from sheer.doctor.state import State

__all__ = ["Cause", "Finding", "Needs", "State", "diagnose", "exit_status", "group"]
