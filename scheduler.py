"""The scheduler process: RQ's CronScheduler enqueues the backup tick every BACKUP_TICK_SECONDS and the analytics
tick (rollups, page views, alerts) every ANALYTICS_TICK_SECONDS for a worker.

Procfile: `scheduler: python scheduler.py` (one is enough; a second is harmless: a day's backup is made once).
A fixed tick rather than a cron line, because the time of day is a runtime setting the owner changes live.
"""
from rq.cron import CronScheduler

from app import create_app
from app.services import backup, queue
from app.tasks import analytics_tick, backup_tick


def main():
    app = create_app()
    if not app.config["REDIS_URL"]:
        raise SystemExit("scheduler.py needs REDIS_URL (and a worker.py on it to run what it schedules).")
    cron = CronScheduler(connection=queue.redis_connection(app))
    cron.register(backup_tick, queue_name=backup.QUEUE_NAME, interval=app.config["BACKUP_TICK_SECONDS"],
                  job_timeout=backup.TASK_TIMEOUT_SECONDS, result_ttl=0, failure_ttl=86400)
    cron.register(analytics_tick, queue_name=queue.PRIORITY_QUEUES[-1], interval=app.config["ANALYTICS_TICK_SECONDS"],
                  job_timeout=300, result_ttl=0, failure_ttl=86400)
    cron.start()


if __name__ == "__main__":
    main()
