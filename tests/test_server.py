"""Server bootstrap: the URL it prints, and tokens kept out of its logs."""

from __future__ import annotations

import logging

from execlog.server import TokenRedactingFilter, bind_socket, server_url


def test_port_zero_binds_a_free_port_and_names_it() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        url = server_url(sock)
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    finally:
        sock.close()


def test_token_query_parameters_are_redacted_from_log_records() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/api/sessions?limit=3&token=s3cret&x=1", "1.1", 200),
        None,
    )
    assert TokenRedactingFilter().filter(record)
    message = record.getMessage()
    assert "s3cret" not in message
    assert "/api/sessions?limit=3&token=***&x=1" in message


def test_serving_process_collects_the_young_generation_less_often() -> None:
    import gc

    from execlog.server import GC_THRESHOLDS, tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
