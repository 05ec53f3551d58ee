"""The remote signing service shipped with esign (``esign-remote``).

An organisation runs it to hold its officers' mobile certificates itself: it
speaks the Cloud Signature Consortium API over keys in a PKCS#11 HSM,
authenticates the calling application, and asks the officer to confirm each
request on a phone page. See ``esign/remote/README.md`` for the API and its
extensions.
"""

from esign.remote.app import create_remote_app
from esign.remote.config import CredentialConfig, RemoteConfig, load_remote_config

__all__ = ["CredentialConfig", "RemoteConfig", "create_remote_app", "load_remote_config"]
