"""The UI's pages. Each module has NAME, PATH, `layout(**query)` and `register(app, data, options)`,
which registers the page with Dash and attaches its own callbacks to `app`."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class PageOptions:
    refresh_s: float = 5.0  # live mode refresh
    pin_dir: str = "/sys/fs/bpf/flowscope"  # where the applied policies' registry lives (policy page)
