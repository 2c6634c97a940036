"""The one error the adapter raises: the installed Airflow is not the one it was written against."""

from __future__ import annotations

import airflow

# The Airflow release every patch and private name in this package was written against.
WRITTEN_AGAINST = "3.3.2"


class AirflowMismatch(RuntimeError):
    """An Airflow internal the adapter relies on is missing or changed shape."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"Airflow {airflow.__version__} is installed, dagbridge's Airflow adapter was written against "
            f"{WRITTEN_AGAINST}: {problem}"
        )
