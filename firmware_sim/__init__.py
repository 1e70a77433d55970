"""Device simulator, vendor sandbox and local broker launcher for replenish-agent tests."""
