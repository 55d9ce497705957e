"""Figures measured at scrape time: at most once per ttl, merged by name, a failure costs only itself."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from gridkit import metrics


def gauge(service: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily("gridgov_test_pending", "test", labels=["service"])
    family.add_metric([service], value)
    return family


def test_a_measure_runs_at_most_once_per_ttl_however_often_it_is_scraped():
    calls = []
    registry = CollectorRegistry()
    metrics.measure_at_scrape("counting", lambda: calls.append(1) or [gauge("a", len(calls))], ttl=3600,
                              registry=registry)
    for _ in range(5):
        text = generate_latest(registry).decode()
    assert len(calls) == 1 and 'gridgov_test_pending{service="a"} 1.0' in text


def test_families_of_one_name_from_several_services_are_served_as_one():
    registry = CollectorRegistry()
    for service in ("intake", "dispatch"):
        metrics.measure_at_scrape(service, lambda s=service: [gauge(s, 2)], ttl=0, registry=registry)
    generate_latest(registry)
    text = generate_latest(registry).decode()
    assert text.count("# TYPE gridgov_test_pending gauge") == 1
    assert 'gridgov_test_pending{service="intake"} 2.0' in text and 'gridgov_test_pending{service="dispatch"} 2.0' in text
    assert text.count('service="intake"') == 1  # merging does not grow the measured families


def test_a_failing_measure_gives_nothing_and_is_tried_again_later():
    registry = CollectorRegistry()
    broken = {"yes": True}

    def flaky():
        if broken["yes"]:
            raise ConnectionError("database gone")
        return [gauge("intake", 7)]

    metrics.measure_at_scrape("flaky", flaky, ttl=0, registry=registry)
    metrics.measure_at_scrape("steady", lambda: [gauge("grids", 1)], ttl=0, registry=registry)
    text = generate_latest(registry).decode()
    assert 'service="grids"' in text and 'service="intake"' not in text
    broken["yes"] = False
    assert 'gridgov_test_pending{service="intake"} 7.0' in generate_latest(registry).decode()
