"""What the API, the SQS handlers and the Dask jobs all call."""
