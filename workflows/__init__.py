"""The DAG-run workflow and what it needs inside the workflow: Airflow's clock and a private database."""
