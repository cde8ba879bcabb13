"""What a benchmark ran on, so its figures can be compared across machines."""

import os
import platform
from importlib.metadata import version
from pathlib import Path


def describe_machine(packages: tuple[str, ...]) -> dict:
    cpu, ram_gb = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in packages},
    }
