"""The example of the original report: the SQL used `users`, the comment says the column is `total_users`."""

REPORT_EXAMPLE = {
    "conversation_id": "c-example",
    "message_id": "m-example",
    "rating": "negative",
    "comment": "Wrong column: the table has total_users, not users",
    "context": {
        "question": "How many systems have more than 500 users?",
        "answer": "There are 12 systems ...",
        "steps": ["list tables", "inspect columns of systems", "run query"],
        "sql_queries": ["SELECT count(*) FROM systems WHERE users > 500"],
        "results": [{"error": "column \"users\" does not exist"}],
        "model": "gpt-4o-mini",
    },
}
