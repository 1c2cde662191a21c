using System.Text.Json.Nodes;
using PeftSharp.IO;
using PeftSharp.Tests.IO;
using PeftSharp.Training;

namespace PeftSharp.Tests.Training;

[Collection(TorchRngCollection.Name)]
public class MetricsTests
{
    [Fact]
    public void Metrics_jsonl_gets_a_line_per_log_interval_and_per_evaluation()
    {
        using var dir = new TempDir();
        using var toy = new ToyTraining();
        var events = new EventLog();
        var options = new TrainerOptions
        {
            MaxSteps = 7,
            LogEvery = 3,
            EvalEvery = 4,
            OutputDirectory = dir.Path,
            EvalData = toy.Data,
            Progress = events,
            Schedule = LearningRateSchedule.Constant(1e-2),
        };
        using var trainer = toy.Trainer(options);
        var result = trainer.Train();

        var lines = MetricsLog.Read(Path.Combine(dir.Path, MetricsLog.FileName));
        var training = lines.Where(l => l.ContainsKey("loss")).ToList();
        Assert.Equal([3L, 6L, 7L], training.Select(l => l["step"]!.GetValue<long>()));
        foreach (var line in training)
        {
            Assert.Equal(["step", "loss", "lr", "grad_norm", "tokens_per_second", "elapsed"], line.Select(p => p.Key));
        }
        // The interval loss is the mean of the steps' losses.
        var expected = result.Steps.Take(3).Average(s => s.Loss);
        Assert.Equal(expected, training[0]["loss"]!.GetValue<double>(), 12);
        Assert.Equal(result.Steps[6].Loss, training[2]["loss"]!.GetValue<double>(), 12);
        var evals = lines.Where(l => l.ContainsKey("eval_loss")).Select(l => l["step"]!.GetValue<long>());
        Assert.Equal([0L, 4L, 7L], evals);
        Assert.Equal(7, events.Of<StepCompleted>().Count());
        Assert.Equal(3, events.Of<MetricsLogged>().Count());
        Assert.Equal(3, events.Of<EvaluationCompleted>().Count());
        Assert.Single(events.Of<TrainingFinished>());
    }

    [Fact]
    public void Summary_json_has_the_agreed_keys_and_before_after_of_the_metric()
    {
        using var dir = new TempDir();
        using var toy = new ToyTraining();
        var options = new TrainerOptions
        {
            MaxSteps = 20,
            OutputDirectory = dir.Path,
            EvalData = toy.Data,
            Task = "toy-regression",
            Metric = "perplexity",
            Schedule = LearningRateSchedule.Constant(2e-2),
        };
        using var trainer = toy.Trainer(options);
        var result = trainer.Train();

        var json = JsonFiles.ReadObject(Path.Combine(dir.Path, "summary.json"));
        Assert.Equal(
            ["task", "metric", "before", "after", "trainable_parameters", "total_parameters", "steps", "train_seconds", "tokens_per_second", "peak_memory_bytes"],
            json.Select(p => p.Key));
        var summary = TrainingSummary.Load(Path.Combine(dir.Path, "summary.json"));
        Assert.Equal("toy-regression", summary.Task);
        Assert.Equal("perplexity", summary.Metric);
        Assert.Equal(Math.Exp(result.Before!.Loss!.Value), summary.Before!.Value, 12);
        Assert.True(summary.After < summary.Before, $"perplexity should fall: {summary.Before} → {summary.After}");
        var (trainable, total) = toy.Peft.ParameterCounts();
        Assert.Equal(trainable, summary.TrainableParameters);
        Assert.Equal(total, summary.TotalParameters);
        Assert.True(summary.TrainSeconds > 0);
        Assert.True(summary.PeakMemoryBytes > 0);
        // No attention mask: every input position counts as a token (4 rows × 4 features per batch).
        Assert.Equal(20 * 16, result.Steps.Sum(s => s.Tokens));
    }

    [Fact]
    public void Non_finite_values_are_written_as_strings_so_the_file_stays_json()
    {
        var line = MetricsLog.Line(new MetricsLogged(3, double.NaN, 0.1, double.PositiveInfinity, 0, 1));
        var parsed = JsonNode.Parse(line.ToJsonString())!;
        Assert.Equal("NaN", parsed["loss"]!.GetValue<string>());
        Assert.Equal("Infinity", parsed["grad_norm"]!.GetValue<string>());
    }
}
