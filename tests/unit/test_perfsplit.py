"""bench.perfsplit: perf script samples into user time and system calls, for chosen processes."""

from __future__ import annotations

from bench.perfsplit import split

SCRIPT = """\
python  101 [000]  1.000:  1001001 cpu-clock:
\tffffffff81000001 tcp_connect+0x10 ([kernel.kallsyms])
\tffffffff81000002 __sys_connect+0x20 ([kernel.kallsyms])
\tffffffff81000003 __x64_sys_connect+0x30 ([kernel.kallsyms])
\tffffffff81000004 do_syscall_64+0x40 ([kernel.kallsyms])
\t7f0000000001 __libc_connect+0x5 (/usr/lib/libc.so.6)

python  101 [000]  1.001:  1001001 cpu-clock:
\t7f0000000002 _PyEval_EvalFrameDefault+0x5 (/usr/lib/libpython3.11.so.1.0)

python  102 [001]  1.002:  1001001 cpu-clock:
\tffffffff81000005 _raw_spin_unlock_irqrestore+0x1 ([kernel.kallsyms])
\tffffffff81000006 finish_task_switch+0x2 ([kernel.kallsyms])

nginx  200 [001]  1.003:  1001001 cpu-clock:
\tffffffff81000003 __x64_sys_close+0x30 ([kernel.kallsyms])
"""


def test_splits_the_chosen_processes_samples() -> None:
    total, counts = split(SCRIPT.splitlines(keepends=True), {"101", "102"})
    assert total == 3
    assert counts == {"connect": 1, "user": 1, "kernel": 1}


def test_other_processes_are_left_out() -> None:
    total, counts = split(SCRIPT.splitlines(keepends=True), {"200"})
    assert (total, dict(counts)) == (1, {"close": 1})
