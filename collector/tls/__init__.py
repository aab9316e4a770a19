"""L7 inside TLS: uprobes on OpenSSL's plaintext calls in pod processes, parsed like the TC capture.

    capture = TlsCapture(TlsCaptureConfig(), endpoints, Decoder(enricher, node, l7=L7Dispatcher(), tls=True),
                         observer.publish_many)
    capture.start()        # raises TlsCaptureError (one line: why) where uprobes cannot run
    capture.not_visible    # {"TLS not visible: statically linked": processes reported}
    capture.stop()
"""

from .capture import TlsCapture, TlsCaptureConfig
from .loader import TlsCaptureError, TlsProgramConfig
from .procs import NOT_VISIBLE

__all__ = ["NOT_VISIBLE", "TlsCapture", "TlsCaptureConfig", "TlsCaptureError", "TlsProgramConfig"]
