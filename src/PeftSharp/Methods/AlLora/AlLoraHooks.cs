using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Training;
using PeftSharp.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PeftSharp.Methods.AlLora;

/// <summary>
/// The trainer's hook for one ALLoRA adapter: in <see cref="PreStep"/> (after backward, before clipping and the optimizer)
/// every row of every lora_A / lora_B gradient is multiplied by <see cref="AlLoraFactor"/> of the matching weight row.
/// The factor depends on the weights only, so applying it to the accumulated gradient equals applying it per sample.
/// With <c>factor_update = "first_step"</c> the factors of the first step are kept, and saved in checkpoints.
/// </summary>
internal sealed class AlLoraHooks(PeftModel model, string adapterName) : ICheckpointedHooks
{
    private readonly Dictionary<string, float[]> _frozen = new(StringComparer.Ordinal);

    public string StateName => "allora/" + adapterName;

    private AlLoraConfig Config => (AlLoraConfig)model.Configs[adapterName];

    public void PreStep(TrainingStep step, IReadOnlyList<NamedParameter> parameters)
    {
        var config = Config;
        var mine = Factors().ToDictionary(f => (object)f.Parameter, ReferenceEqualityComparer.Instance);
        foreach (var p in parameters)
        {
            if (!mine.TryGetValue(p.Parameter, out var entry) || p.Parameter.grad is not { } grad)
            {
                continue;
            }
            using var scope = torch.NewDisposeScope();
            var factors = FactorsOf(p.Name, entry.Parameter, config);
            AlLoraFactor.ScaleRows(grad, factors);
        }
    }

    private Tensor FactorsOf(string name, Parameter theta, AlLoraConfig config)
    {
        if (config.FactorUpdate == AlLoraConfig.EveryStep)
        {
            return AlLoraFactor.RowFactors(theta, config.Eta, config.FactorNorm == AlLoraConfig.SquaredNorm);
        }
        if (!_frozen.TryGetValue(name, out var kept))
        {
            using var computed = AlLoraFactor.RowFactors(theta, config.Eta, config.FactorNorm == AlLoraConfig.SquaredNorm);
            kept = computed.to_type(ScalarType.Float32).data<float>().ToArray();
            _frozen[name] = kept;
        }
        return torch.tensor(kept, device: theta.device);
    }

    private IEnumerable<(string Layer, Parameter Parameter)> Factors()
    {
        foreach (var (name, layer) in model.AdapterLayers())
        {
            if (layer is AlLoraLayer allora && allora.AdapterNames.Contains(adapterName))
            {
                yield return (name, allora.A(adapterName));
                yield return (name, allora.B(adapterName));
            }
        }
    }

    public JsonNode SaveState()
    {
        var factors = new JsonObject();
        foreach (var (name, values) in _frozen.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            factors[name] = new JsonArray([.. values.Select(v => JsonValue.Create(v))]);
        }
        return new JsonObject { ["frozen_factors"] = factors };
    }

    public IReadOnlyList<ParameterChange> RestoreState(JsonNode state)
    {
        _frozen.Clear();
        if (state["frozen_factors"] is JsonObject factors)
        {
            foreach (var (name, values) in factors)
            {
                _frozen[name] = values is JsonArray a ? [.. a.Select(v => v!.GetValue<float>())]
                    : throw new ConfigException($"ALLoRA hook state: frozen_factors['{name}'] is not a list");
            }
        }
        return [];
    }
}
