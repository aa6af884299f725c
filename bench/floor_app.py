"""The floor for bench/submit_http.py: one Flask route doing what a submit must at least do — read the upload,
debit the customer with a ledger row in one transaction, push one message to Redis — and nothing else.
"""
import os
import threading

import psycopg2
import redis
from flask import Flask, request

app = Flask(__name__)
_local = threading.local()
_redis = redis.Redis.from_url(os.environ["REDIS_URL"])


def _connection():
    if getattr(_local, "conn", None) is None:
        _local.conn = psycopg2.connect(os.environ["TEST_DATABASE_URL"].replace("postgresql+psycopg2", "postgresql"))
    return _local.conn


@app.post("/submit")
def submit():
    data = request.files["image"].read()
    user_id = int(request.form["user_id"])
    conn = _connection()
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE users SET balance = balance - 1 WHERE id = %s AND balance >= 1 RETURNING balance",
                    (user_id,))
        (balance,) = cur.fetchone()
        cur.execute("INSERT INTO credit_ledger (user_id, amount, balance_after, kind, reason, created_at) "
                    "VALUES (%s, -1, %s, 'debit', 'floor', now())", (user_id, balance))
    _redis.rpush("bench-floor", len(data))
    return "", 302, {"Location": "/jobs/0"}
