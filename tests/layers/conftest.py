def pytest_configure(config):
    config.addinivalue_line(
        "markers", "layers: builds (≈40 s, once) and runs the Lambda layers; deselect with -m 'not layers'"
    )
