def pytest_configure(config):
    config.addinivalue_line("markers", "real_estimator: goes through denoiselab.noise's PD-4 estimator")
