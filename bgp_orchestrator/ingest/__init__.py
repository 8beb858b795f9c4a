"""Getting BGP updates into Kafka: sources, the publisher, the dead-letter topic."""
