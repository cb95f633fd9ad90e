"""SQS event adapters: parse records, call one service, report partial failures."""
