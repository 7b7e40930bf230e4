"""What the workflows hand to output/: every command's result as frozen, typed records.

Below workflows/ and output/ in the layers (both import it; it imports only model/ and util/),
so a view's signature says what it receives and a renamed field fails in the type checker, not
at run time. Each record's `to_json()` is its command's `--json` document (the schema,
effnet_cli/schemas/effnet-1.schema.json; tests/test_json_documents.py holds the documents to
what they were before the records): JSON only at the edge.
"""
