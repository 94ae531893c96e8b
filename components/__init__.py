"""encoderflow stages: pure logic, importable and testable without Prefect."""
