"""AMQP (RabbitMQ) topology, publishing with confirms, consuming with flow control."""
