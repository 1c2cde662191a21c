using System.Text.Json.Nodes;
using PeftSharp.Core;
using PeftSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Methods.LoraSb;

/// <summary>
/// The trainer's hooks for one LoRA-SB adapter: <see cref="Calibrate"/> runs <see cref="LoraSbCalibration.Calibrate"/>
/// unless the adapter is already initialised (a loaded or earlier-calibrated adapter is never overwritten). B and A are
/// frozen, so a checkpoint's trainable tensors do not hold them: the state records a checksum of the frames, and resuming
/// onto other frames (e.g. a freshly created adapter instead of the checkpoint's <c>adapter/</c> folder) is an error.
/// </summary>
internal sealed class LoraSbHooks(PeftModel model, string adapterName) : ICheckpointedHooks
{
    public string StateName => "lora_sb/" + adapterName;

    public void Calibrate(IEnumerable<Batch> data, BatchLoss loss)
    {
        if (!LoraSbCalibration.IsInitialised(model, adapterName))
        {
            LoraSbCalibration.Calibrate(model, adapterName, data, loss);
        }
    }

    public JsonNode SaveState() => new JsonObject { ["frames_checksum"] = Checksum() };

    public IReadOnlyList<ParameterChange> RestoreState(JsonNode state)
    {
        var saved = state["frames_checksum"]?.GetValue<double>();
        var current = Checksum();
        if (saved != current)
        {
            throw new ModelMismatchException(
                $"LoRA-SB adapter '{adapterName}': the frozen B/A frames differ from the checkpoint's (checksum {current} vs {saved}); " +
                "load the adapter from the checkpoint's adapter folder before resuming");
        }
        return [];
    }

    // Σ B + Σ A in fp64 over every layer: the same frames give the same value on this machine.
    private double Checksum()
    {
        using var scope = torch.NewDisposeScope();
        var total = 0.0;
        foreach (var layer in LoraSbCalibration.Layers(model, adapterName))
        {
            total += layer.B(adapterName).to_type(ScalarType.Float64).sum().item<double>();
            total += layer.A(adapterName).to_type(ScalarType.Float64).sum().item<double>();
        }
        return total;
    }
}
