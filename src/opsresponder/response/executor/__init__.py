"""The execution engine: plans (`plan`), runs them as a DAG (`run`), claims and recovers them
(`worker`), and the facade the API calls (`service`). docs/response.md "Executions"."""
