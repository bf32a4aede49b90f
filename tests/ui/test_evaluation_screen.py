"""The evaluation screen as a person uses it: the confusion matrix's cells, their samples, the tabs."""

from __future__ import annotations

import html
from dataclasses import replace

from textual.widgets import DataTable

from tui_trainer.engine.events import RunFinished
from tui_trainer.ui.app import TrainerApp
from tui_trainer.ui.screens.evaluate import EvaluationScreen
from tui_trainer.ui.widgets.confusion import ConfusionTable
from tui_trainer.ui.widgets.gallery import SampleGallery

from .fakes import DEVICES, ScriptedLauncher, dataset_status, epoch_events, evaluation, started
from .test_app_flow import text_of, wait_for


def launcher_with(ev):
    def script(config):
        yield started(config)
        yield from epoch_events(config, 2)
        yield ev
        yield RunFinished(epochs_done=2, seconds=1.0)

    return ScriptedLauncher(script)


def app_with(ev) -> TrainerApp:
    """The app, its scripted run ending with the evaluation `ev`."""
    return TrainerApp(launcher=launcher_with(ev), devices=DEVICES, dataset_status=dataset_status)


async def open_evaluation(pilot, app) -> EvaluationScreen:
    await pilot.press("f5")
    await wait_for(pilot, lambda: app.run_view.state == "finished")
    await pilot.press("e")
    await pilot.pause()
    assert isinstance(app.screen, EvaluationScreen)
    return app.screen


async def select_cell(pilot, true: int, predicted: int) -> None:
    """Enter on the confusion matrix's cell (true, predicted), moving there with the arrow keys."""
    await pilot.press("2")
    table = pilot.app.screen.query_one(ConfusionTable)
    table.move_cursor(row=0, column=0)
    await pilot.press(*["down"] * true, *["right"] * (predicted + 1), "enter")  # column 0 holds the labels
    await pilot.pause()


def on_screen(app) -> str:
    """The text of the frame a person sees."""
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


def painted_widget(app):
    """The widget under a point in the middle of the tabs' content."""
    widget, _ = app.screen.get_widget_at(4, 6)
    return widget


async def test_a_cell_with_more_images_than_kept_samples_says_how_many_are_kept():
    ev = evaluation()
    kept = [s for s in ev.samples if (s.true_label, s.predicted_label) == (9, 0)]
    assert 0 < len(kept) < ev.confusion[9][0]  # the fixed data: one kept of many
    app = app_with(ev)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_evaluation(pilot, app)
        await select_cell(pilot, 9, 0)
        heading = text_of(app, "#gallery-heading")
        assert heading.startswith(f"Kept {len(kept)} of the {ev.confusion[9][0]} test images of true 'Ankle boot' "
                                  "predicted 'T-shirt/top'")
        assert len(heading) <= app.screen.query_one("#gallery-heading").size.width  # one line in 80 columns
        assert app.screen.tab == "samples"
        gallery = app.screen.query_one(SampleGallery)
        assert gallery.visible() == kept
        drawn = on_screen(app)
        assert "true Ankle boot" in drawn and "x T-shirt/top" in drawn
        assert "true Sneaker" not in drawn  # another cell's sample


async def test_a_cell_with_no_kept_samples_says_so_instead_of_an_empty_gallery():
    ev = evaluation()
    assert ev.confusion[0][1] > 0 and not [s for s in ev.samples if (s.true_label, s.predicted_label) == (0, 1)]
    app = app_with(ev)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_evaluation(pilot, app)
        await select_cell(pilot, 0, 1)
        assert text_of(app, "#gallery-heading").startswith(
            f"Kept 0 of the {ev.confusion[0][1]} test images of true 'T-shirt/top' predicted 'Trouser'")
        assert "The evaluation kept no sample images for this cell" in on_screen(app)


async def test_an_empty_cell_and_a_fully_kept_cell():
    ev = evaluation()
    confusion = [row[:] for row in ev.confusion]
    confusion[9][0] = 1  # the one kept sample is the only one
    assert confusion[1][6] == 0
    ev = replace(ev, confusion=confusion)
    app = app_with(ev)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_evaluation(pilot, app)
        await select_cell(pilot, 9, 0)
        assert text_of(app, "#gallery-heading").startswith(
            "Kept the one test image of true 'Ankle boot' predicted 'T-shirt/top'")
        await select_cell(pilot, 1, 6)
        assert text_of(app, "#gallery-heading").startswith("No test images of true 'Trouser' predicted 'Shirt'")
        assert "No test image falls in this cell." in on_screen(app)


async def test_the_whole_gallerys_heading_counts_the_test_set_too():
    ev = evaluation()
    app = app_with(ev)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_evaluation(pilot, app)
        await pilot.press("3")
        assert text_of(app, "#gallery-heading").startswith(f"{len(ev.samples)} samples kept, of 2,000 test images")
        await pilot.press("m")
        mistakes = sum(s.true_label != s.predicted_label for s in ev.samples)
        all_mistakes = sum(c for t, row in enumerate(ev.confusion) for p, c in enumerate(row) if t != p)
        assert text_of(app, "#gallery-heading").startswith(f"{mistakes} mistakes kept as samples, of {all_mistakes:,}")


async def test_switching_tabs_keeps_each_tabs_content():
    ev = evaluation()
    app = app_with(ev)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_evaluation(pilot, app)
        await select_cell(pilot, 9, 0)
        heading = text_of(app, "#gallery-heading")
        gallery = screen.query_one(SampleGallery)
        shown = gallery.visible()
        for key, tab, widget in [("1", "per-class", "per-class-table"), ("2", "confusion", "confusion-table"),
                                 ("3", "samples", "gallery"), ("1", "per-class", "per-class-table"),
                                 ("3", "samples", "gallery"), ("2", "confusion", "confusion-table")]:
            await pilot.press(key)
            await pilot.pause()
            assert screen.tab == tab
            assert painted_widget(app).id in (widget, "gallery-scroll"), f"tab {key}"
            assert text_of(app, "#gallery-heading") == heading  # the selected cell stays selected
            assert gallery.visible() == shown
        await pilot.press("3")
        await pilot.pause()
        drawn = on_screen(app)
        assert heading.split(" · ")[0] in drawn
        assert "true Ankle boot" in drawn and "x T-shirt/top" in drawn
        await pilot.press("1")
        await pilot.pause()
        drawn = on_screen(app)
        assert "true Ankle boot" not in drawn
        table = screen.query_one("#per-class-table", DataTable)
        assert table.row_count == len(ev.classes) and "Ankle boot (200)" in drawn


async def test_the_gallery_draws_the_same_grid_after_a_resize():
    app = app_with(evaluation())
    async with app.run_test(size=(120, 40)) as pilot:
        await open_evaluation(pilot, app)
        await pilot.press("3")
        await pilot.pause()
        wide = on_screen(app)
        assert wide.count("true ") >= 4  # four cards a row in 120 columns
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert on_screen(app) == wide


async def test_e_brings_back_the_evaluation_as_it_was_left_and_a_new_one_is_built_anew():
    app = app_with(evaluation())
    async with app.run_test(size=(80, 24)) as pilot:
        first = await open_evaluation(pilot, app)
        await select_cell(pilot, 9, 0)
        shown = text_of(app, "#gallery-heading"), first.query_one(SampleGallery).visible()
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, EvaluationScreen)
        await pilot.press("e")
        await pilot.pause()
        assert app.screen is first and first.tab == "samples"  # the same screen, the same cell
        assert (text_of(app, "#gallery-heading"), first.query_one(SampleGallery).visible()) == shown
        await pilot.press("escape")
        await pilot.pause()
        app.run_view.evaluation = replace(app.run_view.evaluation, test_acc=50.0)  # another evaluation arrives
        await pilot.press("e")
        await pilot.pause()
        second = app.screen
        assert isinstance(second, EvaluationScreen) and second is not first and second.tab == "per-class"
        assert "Test accuracy 50.00%" in on_screen(app)
        assert first not in app._installed_screens.values()  # the old one is let go


async def test_a_click_on_a_tab_opens_it_and_the_footer_keeps_its_keys_across_tabs():
    app = app_with(evaluation())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_evaluation(pilot, app)
        bar = text_of(app, "#eval-tab-bar")
        keys = list(screen.query("FooterKey"))
        assert [k.description for k in keys][:3] == ["Per class", "Confusion", "Samples"]
        assert all(k.has_class("-compact") for k in keys)
        for label, tab in [("3 Samples", "samples"), ("2 Confusion", "confusion"), ("1 Per class", "per-class")]:
            await pilot.click("#eval-tab-bar", offset=(bar.index(label) + 1, 0))
            await pilot.pause()
            assert screen.tab == tab, label
        assert list(screen.query("FooterKey")) == keys  # the same keys: not rebuilt on each focus move
