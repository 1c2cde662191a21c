using PeftSharp.Core;
using PeftSharp.IO;
using PeftSharp.Methods.Diffora;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.IO;
using PeftSharp.Tests.Support;
using PeftSharp.Tests.Training;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Methods.Diffora;

/// <summary>Discretisation: top-K kept as a plain LoRA with the searched weights, saved and reloaded as LoRA, through the trainer.</summary>
[Collection(TorchRngCollection.Name)]
public class DifforaDiscretisationTests
{
    // NestedNet candidates, in model order: stem.proj (4→6), blocks.{0,1}.{q,v}_proj (6×6), branches.left (6×6).
    private static readonly TargetModules s_targets = TargetModules.Of("q_proj", "v_proj", "left", "proj");

    private static DifforaConfig Config(int searchSteps = 2, double ratio = 0.5) =>
        new() { Rank = 2, Alpha = 4, SelectionRatio = ratio, SearchSteps = searchSteps, TargetModules = s_targets };

    private static (NestedNet Net, PeftModel Peft, Dictionary<string, Tensor> Base) Searched(double[] gates)
    {
        torch.manual_seed(5);
        var net = new NestedNet();
        net.eval();
        var baseState = net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var peft = PeftModel.Create(net, Config());
        using var _ = torch.no_grad();
        foreach (var (layer, gate) in Layers(peft).Zip(gates))
        {
            layer.Layer.B("default").copy_(torch.randn_like(layer.Layer.B("default")) * 0.3);
            layer.Layer.Gate("default").fill_(gate);
        }
        return (net, peft, baseState);
    }

    private static List<(string Name, DifforaLayer Layer)> Layers(PeftModel peft) =>
        [.. peft.AdapterLayers().Select(l => (l.Name, (DifforaLayer)l.Layer))];

    [Fact]
    public void Discretisation_keeps_exactly_the_top_k_by_gate_as_a_plain_lora_with_the_searched_weights()
    {
        // Logits for stem.proj, b0.q, b0.v, b1.q, b1.v, left: K = round(0.5·6) = 3 → b0.v (3), left (2.5), stem.proj (1).
        var (net, peft, _) = Searched([1.0, -2.0, 3.0, 0.5, -1.0, 2.5]);
        var names = Layers(peft).Select(l => l.Name).ToList();
        Assert.Equal(["stem.proj", "blocks.0.q_proj", "blocks.0.v_proj", "blocks.1.q_proj", "blocks.1.v_proj", "branches.left"], names);
        var searched = Layers(peft).ToDictionary(l => l.Name, l => (A: l.Layer.A("default").detach().clone(), B: l.Layer.B("default").detach().clone()));

        var hooks = new DifforaSearch(peft, "default", (DifforaConfig)peft.Configs["default"]);
        var changes = hooks.Discretise(optimizer: null);

        string[] expected = ["stem.proj", "blocks.0.v_proj", "branches.left"];
        Assert.Equal(expected, hooks.Selection!.Selected);
        var lora = Assert.IsType<LoraConfig>(peft.Configs["default"]);
        Assert.Equal(expected, lora.TargetModules!.Names);
        Assert.Equal(expected, peft.AdapterLayers().Select(l => l.Name));
        Assert.All(peft.AdapterLayers(), l => Assert.IsType<LoraLayer>(l.Layer));
        Assert.IsType<TorchSharp.Modules.Linear>(ModuleTree.Get(net, "blocks.0.q_proj"));
        // Weight sharing: the kept LoRA factors are the searched ones, bit for bit; γ is gone (Γ = 1).
        foreach (var (name, layer) in peft.AdapterLayers())
        {
            var t = layer.AdapterTensors("default");
            Assert.True(Weights.Exact(t["lora_A.weight"], searched[name].A));
            Assert.True(Weights.Exact(t["lora_B.weight"], searched[name].B));
            Assert.Equal(2.0, ((LoraLayer)layer).ScalingOf("default"));
        }
        Assert.Equal(2 * expected.Length, changes.Count);
        Assert.Equal(2 * (4 + 6) + 2 * 2 * (6 + 6), peft.ParameterCounts().Trainable);
    }

    [Fact]
    public void Discretised_model_equals_the_relaxation_with_gates_set_to_one_and_zero()
    {
        // σ(+∞) = 1 and σ(−∞) = 0 exactly: the relaxed forward then is the discretised one, bit for bit.
        var inf = double.PositiveInfinity;
        var (net, peft, _) = Searched([-inf, inf, -inf, inf, -inf, -inf]);
        var x = torch.randn(5, 4);
        using var relaxed = net.call(x);
        new DifforaSearch(peft, "default", Config(ratio: 2.0 / 6)).Discretise(optimizer: null);
        Assert.Equal(["blocks.0.q_proj", "blocks.1.q_proj"], peft.AdapterLayers().Select(l => l.Name));
        using var discrete = net.call(x);
        Assert.True(Weights.Exact(discrete, relaxed), $"differs by {Weights.MaxAbsDiff(discrete, relaxed)}");
    }

    [Fact]
    public void Saved_discretised_adapter_lists_the_modules_and_loads_as_lora_on_exactly_them()
    {
        var (net, peft, baseState) = Searched([1.0, -2.0, 3.0, 0.5, -1.0, 2.5]);
        new DifforaSearch(peft, "default", Config()).Discretise(optimizer: null);
        var x = torch.randn(5, 4);
        using var expected = net.call(x);
        using var dir = new TempDir();
        PeftAdapterFiles.Save(peft, dir.Path);

        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, PeftAdapterFiles.ConfigFileName)))!;
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        string[] selected = ["stem.proj", "blocks.0.v_proj", "branches.left"];
        Assert.Equal(selected, json[DifforaConfig.SelectedModulesKey]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(selected, json["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(6, json[DifforaConfig.GatesKey]!.AsObject().Count);

        var fresh = new NestedNet();
        using (torch.no_grad())
        {
            foreach (var (n, p) in fresh.named_parameters())
            {
                p.copy_(baseState[n]);
            }
        }
        fresh.eval();
        var loaded = PeftAdapterFiles.FromPretrained(fresh, dir.Path);
        Assert.IsType<LoraConfig>(loaded.Configs["default"]);
        Assert.Equal(selected, loaded.AdapterLayers().Select(l => l.Name));
        Assert.All(loaded.AdapterLayers(), l => Assert.IsType<LoraLayer>(l.Layer));
        using var got = fresh.call(x);
        Assert.True(Weights.Exact(got, expected));

        // Merged = unmerged after discretisation.
        using (torch.no_grad())
        {
            loaded.Merge();
            using var merged = fresh.call(x);
            Assert.True(Weights.MaxAbsDiff(merged, expected) <= 1e-5);
        }
    }

    private static TrainerOptions Options(long steps) => new()
    {
        MaxSteps = steps,
        MaxGradNorm = null,
        Schedule = LearningRateSchedule.Constant(0.05),
        EvaluateBeforeTraining = false,
    };

    private static ToyTraining Toy(int searchSteps = 2) => new(dropout: 0, config: () => Config(searchSteps));

    [Fact]
    public void Trainer_discretises_after_search_steps_and_keeps_the_optimizer_state_of_the_kept_factors()
    {
        using var toy = Toy();
        using var trainer = toy.Trainer(Options(steps: 3));
        var hooks = Assert.Single(trainer.Hooks.OfType<DifforaSearch>());
        var composite = Assert.IsType<CompositeOptimizer>(trainer.Optimizer);
        var gates = composite.Parts[0];
        Assert.All(gates.Parameters, p => Assert.EndsWith(".diffora_gate.default", p.Name));
        Assert.Equal(6, gates.Parameters.Count());
        var adamw = (AdamWOptimizer)composite.Parts[1];

        trainer.TrainStep();
        var gammas = Layers(toy.Peft).Select(l => l.Layer.GateValue("default")).ToList();
        Assert.Contains(gammas, g => g != 0.5);
        trainer.TrainStep();
        Assert.NotNull(hooks.Selection);
        // The selection is the top 3 of the γ the search ended with.
        var ranked = hooks.Selection!.Candidates.OrderByDescending(c => c.Gate).Take(3).Select(c => c.Name).ToHashSet();
        Assert.Equal(ranked, hooks.Selection.Selected.ToHashSet());
        Assert.IsType<LoraConfig>(toy.Peft.Configs["default"]);
        Assert.Empty(gates.Parameters);
        Assert.Equal(2 * 3, adamw.Parameters.Count());
        Assert.Equal(trainer.Trainable.Select(p => p.Name).Order(), adamw.Parameters.Select(p => p.Name).Order());
        foreach (var (_, layer) in toy.Peft.AdapterLayers())
        {
            var a = (TorchSharp.Modules.Parameter)layer.AdapterTensors("default")["lora_A.weight"];
            Assert.Equal(2, adamw.StateOf(a)!.Step);
        }
        trainer.TrainStep();
        foreach (var (_, layer) in toy.Peft.AdapterLayers())
        {
            var a = (TorchSharp.Modules.Parameter)layer.AdapterTensors("default")["lora_A.weight"];
            Assert.Equal(3, adamw.StateOf(a)!.Step);
        }
    }

    [Fact]
    public void Resume_after_discretisation_reproduces_the_uninterrupted_run_bitwise()
    {
        using var a = new TempDir();
        using var b = new TempDir();
        double[] straight;
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 5) with { OutputDirectory = a.Path }))
        {
            straight = [.. trainer.Train().Steps.Select(s => s.Loss)];
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 3) with { OutputDirectory = b.Path, CheckpointEvery = 3 }))
        {
            trainer.Train();
        }
        using (var toy = Toy())
        using (var trainer = toy.Trainer(Options(steps: 5) with { OutputDirectory = b.Path }))
        {
            trainer.Resume(Path.Combine(b.Path, "checkpoint-3"));
            Assert.NotNull(trainer.Hooks.OfType<DifforaSearch>().Single().Selection);
            Assert.Equal(straight, trainer.Train().Steps.Select(s => s.Loss));
        }
    }
}
