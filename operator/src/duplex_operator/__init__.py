"""duplex operator: turns TTSWorker and VoiceModel resources into worker pods and resident models.

Pure builders (spec in, manifest out) live in ``builders``, the image catalog
in ``images``; placement and status decisions in ``placement`` and
``status``; the kopf handlers that call them are thin.
"""

from duplex_operator.builders import (
    PoolSpec,
    headless_service,
    service_account,
    statefulset,
    vacant_leases,
    worker_role,
)
from duplex_operator.images import NoWorkerImage, WorkerImage, pick_image, worker_images
from duplex_operator.placement import Candidate, known_size, place
from duplex_operator.status import voicemodel_status
from duplex_operator.validation import voicemodel_problems

__all__ = [
    "Candidate",
    "NoWorkerImage",
    "PoolSpec",
    "WorkerImage",
    "headless_service",
    "known_size",
    "pick_image",
    "place",
    "service_account",
    "statefulset",
    "vacant_leases",
    "voicemodel_problems",
    "voicemodel_status",
    "worker_images",
    "worker_role",
]
