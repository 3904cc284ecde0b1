"""The local stack: a real Kafka broker, a private PostgreSQL server and the three services, on this machine."""
