"""Scale-out attribution on Dask distributed (optional extra ``tfx_explain[distributed]``).

:func:`attribute_dataset` runs any attribution method over a parquet dataset on a
local loopback cluster or an existing one; the model travels as a params file plus the
import path of its function, loaded once per worker.
"""

try:
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "tfx_explain.distributed needs dask[distributed,dataframe] and pyarrow: "
        "pip install 'tfx_explain[distributed]' (from a checkout: pip install -e '.[distributed]')"
    ) from error

from ._cluster import WORKER_ENVIRON, WORKER_PRELOAD, local_cluster
from ._job import ERRORS_FILE, SUMMARY_FILE, JobProgress, JobResult, attribute_dataset
from ._loader import METHODS, load_model
from ._people import write_people_parquet
from ._progress import job_progress

__all__ = [
    "ERRORS_FILE",
    "METHODS",
    "SUMMARY_FILE",
    "WORKER_ENVIRON",
    "WORKER_PRELOAD",
    "JobProgress",
    "JobResult",
    "attribute_dataset",
    "job_progress",
    "load_model",
    "local_cluster",
    "write_people_parquet",
]
