using PeftSharp.Core;
using PeftSharp.Methods.Lora;
using PeftSharp.Tests.Support;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

/// <summary>A NestedNet with LoRA (dropout on, so torch's generator matters) and a small regression data set.</summary>
internal sealed class ToyTraining : IDisposable
{
    private readonly List<Batch> _batches = [];

    public ToyTraining(int modelSeed = 7, double dropout = 0.1, int batches = 6, int rows = 4, MethodRegistry? registry = null, AdapterConfigFactory? config = null)
    {
        torch.manual_seed(modelSeed);
        Net = new NestedNet();
        var adapter = config?.Invoke() ?? new LoraConfig { Rank = 2, Alpha = 4, Dropout = dropout, TargetModules = TargetModules.Of("q_proj", "v_proj", "proj") };
        Peft = PeftModel.Create(Net, adapter, registry: registry);
        // Non-zero B so that every LoRA factor gets a gradient from the first step.
        using (torch.no_grad())
        {
            foreach (var (name, p) in Peft.NamedParameters().Where(p => p.Name.Contains("lora_B")))
            {
                p.copy_(torch.randn_like(p) * 0.1);
            }
        }
        var generator = new torch.Generator(1234);
        for (var i = 0; i < batches; i++)
        {
            var x = torch.randn([rows, 4], generator: generator);
            var y = torch.randn([rows, 3], generator: generator);
            x.DetachFromDisposeScope();
            y.DetachFromDisposeScope();
            _batches.Add(new Batch(x, Labels: y));
        }
        Data = new InMemoryBatchDataset(_batches);
    }

    public delegate AdapterConfig AdapterConfigFactory();

    public NestedNet Net { get; }

    public PeftModel Peft { get; }

    public InMemoryBatchDataset Data { get; }

    public IReadOnlyList<Batch> Batches => _batches;

    /// <summary>Mean squared error of the net's output against the batch's Labels.</summary>
    public Tensor Loss(Batch batch) => nn.functional.mse_loss(Net.call(batch.InputIds), batch.Labels!);

    public Trainer Trainer(TrainerOptions options, TrainingData? data = null) =>
        new(Peft, Loss, data ?? TrainingData.FromDataset(Data, options.Shuffle), options);

    /// <summary>Bitwise copies of the trainable tensors, by name.</summary>
    public Dictionary<string, float[]> Snapshot() =>
        Peft.NamedParameters().Where(p => p.Parameter.requires_grad)
            .ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().data<float>().ToArray());

    public void Dispose()
    {
        foreach (var b in _batches)
        {
            b.InputIds.Dispose();
            b.Labels?.Dispose();
        }
        Peft.Dispose();
    }
}

/// <summary>Collects the trainer's events.</summary>
internal sealed class EventLog : IProgress<TrainingEvent>
{
    public List<TrainingEvent> Events { get; } = [];

    public void Report(TrainingEvent value) => Events.Add(value);

    public IEnumerable<T> Of<T>() => Events.OfType<T>();
}

/// <summary>
/// Tests that seed torch's process-wide generator and expect bit-identical runs: they run alone, never in parallel with
/// another test class that draws from the same generator.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchRngCollection
{
    public const string Name = "torch global RNG";
}
