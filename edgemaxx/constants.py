"""Names shared across packages: container labels, paths inside the sandbox, limits."""

# Every sandbox container and process carries these so a reaper can find leftovers.
LABEL_SANDBOX = "edgemaxx.sandbox"
LABEL_OWNER = "edgemaxx.owner"
LABEL_RUN = "edgemaxx.run"
LABEL_IMAGE_KEY = "edgemaxx.image-key"

SOCKET_NAME = "inferences.sock"
SPEC_VERSION = 8

# Paths inside the sandbox image.
SANDBOX_APP_DIR = "/app"
SANDBOX_MODELS_DIR = "/models"
SANDBOX_VENV = "/opt/venv"
SANDBOX_LAUNCHER = "/opt/edgemaxx/launch.py"

# Submission limits from the SN39 rules.
MAX_CODE_BYTES = 16 * 1024 * 1024
MAX_MODELS_BYTES = 100 * 1024**3

# A process-sandbox environment directory (built by images/, run by sandbox/).
ENV_VENV_PYTHON = "venv/bin/python"
ENV_LAUNCHER = "launch.py"
