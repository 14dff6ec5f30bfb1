# Headless Chromium for the report test (tests/sim/test_report_browser.py):
#   make chromium    install Debian's chromium where /usr/bin/chromium is missing
# playwright drives it from /usr/bin/chromium; it cannot download browsers here.
.PHONY: chromium

chromium:
	bash scripts/install-chromium.sh

TEST_DEPS += chromium
