"""The web console (issue #18): static pages served at ``/console``, no build step, no CDN.

The console is plain HTML, CSS and ES modules under ``static/``; everything it shows comes
from the service's JSON API, which does the authentication, the roles and the redaction. This
package only serves the files, with a Content-Security-Policy that allows no inline script.
"""

from __future__ import annotations

from orchestrator.http.console.pages import CONTENT_SECURITY_POLICY, root_redirect, router

__all__ = ["CONTENT_SECURITY_POLICY", "root_redirect", "router"]
