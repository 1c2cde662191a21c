using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.GaLore;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.GaLore;

/// <summary>GaLore through the common trainer: who optimizes what, the saved weights, and exact resume.</summary>
[Collection(TorchRngCollection.Name)]
public class GaLoreTrainingTests
{
    private static GaLoreConfig Config(IReadOnlyList<string>? modulesToSave = null) =>
        new() { Rank = 2, UpdateProjectionGap = 3, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj"), ModulesToSave = modulesToSave };

    private static TrainerOptions Options(string? output, long maxSteps) => new()
    {
        MaxSteps = maxSteps,
        Seed = 5,
        LogEvery = 2,
        CheckpointEvery = output is null ? 0 : 5,
        OutputDirectory = output,
        Schedule = new LearningRateSchedule { Kind = ScheduleKind.Cosine, PeakLearningRate = 2e-2, WarmupSteps = 2, TotalSteps = 10 },
        EvaluateBeforeTraining = false,
    };

    [Fact]
    public void Galore_claims_the_target_weights_and_the_head_gets_plain_adamw()
    {
        using var toy = new ToyTraining(config: () => Config(["lm_head"]));
        var frozenBase = toy.Peft.AdapterLayers().ToDictionary(l => l.Name, l => l.Layer.Base.Weight.detach().clone());
        using var trainer = toy.Trainer(Options(null, 4));
        var composite = Assert.IsType<CompositeOptimizer>(trainer.Optimizer);
        var galore = Assert.IsType<GaLoreAdamW>(composite.Parts[0]);
        Assert.IsType<AdamWOptimizer>(composite.Parts[1]);
        var galoreNames = galore.Parameters.Select(p => p.Name).Order().ToList();
        Assert.Equal(5, galoreNames.Count);
        Assert.All(galoreNames, n => Assert.EndsWith(".galore_weight.default", n));
        Assert.All(composite.Parts[1].Parameters, p => Assert.Contains("lm_head.modules_to_save.default.", p.Name));

        var before = toy.Snapshot();
        trainer.Train();
        var after = toy.Snapshot();
        Assert.All(galoreNames, n => Assert.NotEqual(before[n], after[n]));
        foreach (var (name, layer) in toy.Peft.AdapterLayers())
        {
            Assert.True(Weights.Exact(layer.Base.Weight, frozenBase[name]), $"{name}: the base weight must stay frozen");
            var state = galore.StateOf(((GaLoreLayer)layer).WeightOf("default"))!;
            var w = layer.Base.Weight;
            Assert.Equal(GaLoreProjector.StateShape(w.shape[0], w.shape[1], 2, GaLoreProjector.Side(w.shape[0], w.shape[1], GaLoreProjection.Standard)), state.Tensors["exp_avg"].shape);
        }
    }

    [Fact]
    public void Saved_file_holds_the_full_trained_weights_under_the_module_names_and_reloads_bit_exactly()
    {
        using var dir = new TempDir();
        using var toy = new ToyTraining(config: () => Config());
        using (var trainer = toy.Trainer(Options(null, 3)))
        {
            trainer.Train();
        }
        PeftAdapterFiles.Save(toy.Peft, dir.Path);
        using var file = PeftAdapterFiles.OpenWeights(dir.Path);
        var expected = toy.Peft.AdapterLayers().ToDictionary(l => PeftModel.NamePrefix + l.Name + ".weight", l => ((GaLoreLayer)l.Layer).WeightOf("default"));
        Assert.Equal(expected.Keys.Order(), file.Entries.Select(e => e.Name).Order());
        foreach (var (key, w) in expected)
        {
            using var saved = file.Read(key);
            Assert.True(Weights.Exact(saved, w), key);
        }

        using var x = torch.randn(3, 4);
        toy.Net.eval();
        using var trained = toy.Net.call(x);
        using var fresh = new ToyTraining(config: () => Config());
        fresh.Peft.DeleteAdapter("default");
        PeftAdapterFiles.Load(fresh.Peft, dir.Path);
        fresh.Net.eval();
        using var loaded = fresh.Net.call(x);
        Assert.True(Weights.Exact(trained, loaded));
        using (fresh.Peft.DisableAdapters())
        {
            using var baseOut = fresh.Net.call(x);
            Assert.False(Weights.Exact(trained, baseOut), "disabled must run the frozen base weights");
        }
    }

    [Fact]
    public void Five_steps_then_resume_then_five_equals_ten_uninterrupted_steps_bitwise()
    {
        // T = 3: the resumed half refreshes the projector at steps 6 and 9 from a restored state.
        using var straightDir = new TempDir();
        using var splitDir = new TempDir();
        double[] straight;
        Dictionary<string, float[]> straightWeights;
        using (var toy = new ToyTraining(config: () => Config(["lm_head"])))
        using (var trainer = toy.Trainer(Options(straightDir.Path, 10)))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
            straightWeights = toy.Snapshot();
        }
        using (var toy = new ToyTraining(config: () => Config(["lm_head"])))
        using (var trainer = toy.Trainer(Options(splitDir.Path, 5)))
        {
            trainer.Train();
        }
        var checkpoint = Path.Combine(splitDir.Path, "checkpoint-5");
        using (var state = PeftSharp.IO.Safetensors.SafetensorsFile.Open(Path.Combine(checkpoint, Checkpoints.OptimizerFile)))
        {
            var projector = state.Entries.Single(e => e.Name == "base_model.model.stem.proj.galore_weight.default/projector");
            Assert.Equal([2L, 4L], projector.Shape);
            Assert.Equal([6L, 2L], state["base_model.model.stem.proj.galore_weight.default/exp_avg"].Shape);
        }
        double[] resumed;
        using (var toy = new ToyTraining(config: () => Config(["lm_head"])))
        using (var trainer = toy.Trainer(Options(splitDir.Path, 10)))
        {
            trainer.Resume(checkpoint);
            resumed = [.. trainer.Train().Steps.Select(s => s.Loss)];
            Assert.Equal(straightWeights, toy.Snapshot());
        }
        Assert.Equal(straight, resumed);
    }
}
