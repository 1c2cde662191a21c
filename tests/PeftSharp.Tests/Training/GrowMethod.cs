using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Training;

/// <summary>
/// A test-only method that uses every training hook, to prove the hooks are general: y = base(x) + B·A·x with
/// per-layer hooks (PreStep doubles the layer's gradients, PostStep clamps B, B gets its own SGD via CustomOptimizer)
/// and model-level hooks from the method descriptor (Calibrate, OnStepBegin draws, OnSchedule grows the rank by one
/// at a given step, checkpointed).
/// </summary>
internal sealed record GrowConfig : AdapterConfig
{
    public const string Type = "TEST_GROW";

    public override string PeftType => Type;

    [JsonPropertyName("grow_after_step")]
    public long GrowAfterStep { get; init; } = 2;

    [JsonPropertyName("clamp")]
    public double Clamp { get; init; } = 10;

    [JsonPropertyName("b_lr_scale")]
    public double BLearningRateScale { get; init; } = 1;
}

internal sealed class GrowMethod : IAdapterMethod, ITrainingHooksProvider
{
    public static MethodRegistry Registry()
    {
        var r = new MethodRegistry();
        r.Add(new GrowMethod());
        return r;
    }

    public string Name => "test-grow";

    public string PeftType => GrowConfig.Type;

    public string Description => "test method using every training hook";

    public string ParameterCountFormula => "r·(d_in + d_out)";

    public Type ConfigType => typeof(GrowConfig);

    public bool Supports(BaseLayer layer) => layer.Kind == BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new GrowLayer(layer);

    public ITrainingHooks? CreateHooks(PeftModel model, string adapterName) => new GrowHooks(model, adapterName);
}

internal sealed class GrowLayer : AdapterLayer, ITrainingHooks
{
    private readonly AdapterParameterDict _a = new();
    private readonly AdapterParameterDict _b = new();
    private readonly Dictionary<string, GrowConfig> _configs = [];

    public GrowLayer(BaseLayer baseLayer) : base(nameof(GrowLayer), baseLayer)
    {
        register_module("grow_A", _a);
        register_module("grow_B", _b);
    }

    public override string PeftType => GrowConfig.Type;

    /// <summary>B and its raw gradient as PreStep saw them at the last step (before doubling).</summary>
    public (float[] B, float[] RawGradB)? LastPreStep { get; private set; }

    public List<string> Calls { get; } = [];

    public Parameter A(string adapter) => _a[adapter];

    public Parameter B(string adapter) => _b[adapter];

    protected override void CreateAdapter(string adapterName, AdapterConfig config)
    {
        _configs[adapterName] = (GrowConfig)config;
        _a.Set(adapterName, new Parameter(torch.randn(1, Base.InFeatures) * 0.3));
        _b.Set(adapterName, new Parameter(torch.randn(Base.OutFeatures, 1) * 0.3));
    }

    protected override void RemoveAdapter(string adapterName)
    {
        _a.Remove(adapterName);
        _b.Remove(adapterName);
        _configs.Remove(adapterName);
    }

    protected override Tensor ApplyAdapter(string adapterName, Tensor x, Tensor result) =>
        result + x.matmul(_a[adapterName].t()).matmul(_b[adapterName].t());

    public override Tensor? DeltaWeight(string adapterName) => _b[adapterName].matmul(_a[adapterName]);

    public override IReadOnlyDictionary<string, Tensor> AdapterTensors(string adapterName) =>
        new Dictionary<string, Tensor> { ["grow_A"] = _a[adapterName], ["grow_B"] = _b[adapterName] };

    /// <summary>Rank r → r + 1: A gains a row of 0.01, B a zero column, so the layer's function is unchanged.</summary>
    public IReadOnlyList<ParameterChange> Grow(string adapter)
    {
        using var noGrad = torch.no_grad();
        var oldA = _a[adapter];
        var oldB = _b[adapter];
        var newA = new Parameter(torch.cat([oldA, torch.full(1, oldA.shape[1], 0.01f)], 0));
        var newB = new Parameter(torch.cat([oldB, torch.zeros(oldB.shape[0], 1)], 1));
        _a.Set(adapter, newA);
        _b.Set(adapter, newB);
        return
        [
            new ParameterChange(oldA, newA, (_, s) => torch.cat([s, torch.zeros(1, s.shape[1])], 0)),
            new ParameterChange(oldB, newB, (_, s) => torch.cat([s, torch.zeros(s.shape[0], 1)], 1)),
        ];
    }

    public void PreStep(TrainingStep step, IReadOnlyList<NamedParameter> parameters)
    {
        Calls.Add("pre");
        foreach (var adapter in _configs.Keys)
        {
            var b = _b[adapter];
            LastPreStep = (b.detach().cpu().data<float>().ToArray(), b.grad!.cpu().data<float>().ToArray());
            foreach (var p in parameters.Where(p => ReferenceEquals(p.Parameter, b) || ReferenceEquals(p.Parameter, _a[adapter])))
            {
                p.Parameter.grad!.mul_(2);
            }
        }
    }

    public void PostStep(TrainingStep step)
    {
        Calls.Add("post");
        using var noGrad = torch.no_grad();
        foreach (var (adapter, config) in _configs)
        {
            _b[adapter].clamp_(-config.Clamp, config.Clamp);
        }
    }

    public TrainingOptimizer? CustomOptimizer(IReadOnlyList<NamedParameter> trainable)
    {
        var mine = trainable.Where(p => _configs.Keys.Any(a => ReferenceEquals(p.Parameter, _b[a]))).ToList();
        var scale = _configs.Values.First().BLearningRateScale;
        return mine.Count == 0 ? null : new SgdOptimizer([new ParameterGroup("grow_B", mine, learningRateScale: scale)]);
    }
}

internal sealed class GrowHooks(PeftModel model, string adapter) : ICheckpointedHooks
{
    public bool Grown { get; private set; }

    public int CalibrationBatches { get; private set; }

    public List<int> Draws { get; } = [];

    public List<string> Calls { get; } = [];

    public string StateName => "test-grow/" + adapter;

    private GrowConfig Config => (GrowConfig)model.Configs[adapter];

    private IEnumerable<GrowLayer> Layers => model.AdapterLayers().Select(l => l.Layer).OfType<GrowLayer>();

    public void Calibrate(IEnumerable<Batch> data, BatchLoss loss)
    {
        foreach (var batch in data.Take(2))
        {
            loss(batch).backward();
            CalibrationBatches++;
        }
    }

    public void OnStepBegin(TrainingStep step)
    {
        Calls.Add("begin");
        Draws.Add(step.CreateRandom().Next(1_000_000));
    }

    public IReadOnlyList<ParameterChange> OnSchedule(TrainingStep step, TrainingOptimizer optimizer)
    {
        Calls.Add("schedule");
        if (Grown || step.Step + 1 != Config.GrowAfterStep)
        {
            return [];
        }
        Grown = true;
        return [.. Layers.SelectMany(l => l.Grow(adapter))];
    }

    public JsonNode SaveState() => new JsonObject { ["grown"] = Grown };

    public IReadOnlyList<ParameterChange> RestoreState(JsonNode state)
    {
        if (state["grown"]!.GetValue<bool>() && !Grown)
        {
            Grown = true;
            return [.. Layers.SelectMany(l => l.Grow(adapter))];
        }
        return [];
    }
}
