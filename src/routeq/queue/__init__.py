"""The broker side shared by producers and workers: the Celery app (queues, task names, the
reliability settings) and the publisher of hops. It holds no task bodies, so a producer (the
client, a batch job, the gateway to come) never imports worker code."""
